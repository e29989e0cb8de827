/** CSS files are bundled by esbuild (scripts/build-web.ts); importing one only adds it to app.css. */
declare module "*.css" {}
