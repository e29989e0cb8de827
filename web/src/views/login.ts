/** The login screen: the admin token or a login token, exchanged at POST /v1/auth/token (docs/auth.md). */
import { h, setText } from "../dom.ts";
import { LoginError, type Session } from "../session.ts";

export function loginScreen(session: Session, reason: string | undefined, done: () => void): HTMLElement {
  const input = h("input", {
    id: "login-token",
    name: "token",
    type: "password",
    required: true,
    autocomplete: "current-password",
    spellcheck: "false",
    "aria-describedby": "login-help",
  });
  const message = h("p", { class: "form-message error", role: "alert", id: "login-message" }, reason ?? "");
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    {
      class: "card login",
      "aria-labelledby": "login-title",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        setText(message, "");
        try {
          await session.login(input.value);
          input.value = "";
          done();
        } catch (error) {
          setText(message, error instanceof LoginError ? error.message : `Signing in failed: ${(error as Error).message}`);
          input.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("h1", { id: "login-title" }, "Sign in to edgemesh"),
    // For password managers and accessibility checkers: a password form names its user.
    h("input", { type: "text", name: "username", autocomplete: "username", value: "edgemesh", hidden: true, "aria-hidden": "true" }),
    h("label", { for: "login-token" }, "Admin token or login token"),
    input,
    h(
      "p",
      { class: "muted small", id: "login-help" },
      "An admin gives you a login token (POST /v1/auth/token with grant_type issue). On a new install, the ADMIN_TOKEN that ",
      h("code", {}, "scripts/dev.sh"),
      " printed works too. The token stays in this browser until you sign out.",
    ),
    submit,
    message,
  );
  setTimeout(() => input.focus(), 0);
  return h("main", { class: "login-page", id: "main" }, form);
}
