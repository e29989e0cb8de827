/** A configuration that cannot work (the Worker's [vars], the agent's YAML file): said once, at start, with what is wrong. */
export class ConfigError extends Error {
  override name = "ConfigError";
}
