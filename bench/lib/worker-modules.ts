/**
 * Imported for its effect, before a bench imports the Worker's own modules: they import each
 * other without file extensions (wrangler bundles them), which Node's type stripping needs, so
 * relative imports without one get ".ts". The Worker's modules must then be imported dynamically
 * (`await import(...)`), after this module ran.
 */
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      if (!/^\.\.?\//.test(specifier) || /\.[cm]?[jt]s$/.test(specifier)) throw error;
      return nextResolve(`${specifier}.ts`, context);
    }
  },
});
