/** Sign in and register: one form each, the token goes into the session. */
import type { PublicUser } from "../../../models/users/user.ts";
import { api, setSession, takeEndedReason } from "../api.ts";
import { field, h } from "../dom.ts";
import type { Page } from "../router.ts";

export function signInPage(mode: "signin" | "register"): Page {
	return main => {
		const registering = mode === "register";
		const reason = takeEndedReason();
		const error = h("p", { class: "error", role: "alert" });
		const username = h("input", { name: "username", autocomplete: "username", required: true, minlength: registering ? 3 : undefined, maxlength: 32, pattern: registering ? "[a-z0-9_.\\-]+" : undefined, autocapitalize: "none" });
		const password = h("input", { name: "password", type: "password", autocomplete: registering ? "new-password" : "current-password", required: true, minlength: registering ? 8 : undefined });
		const submit = h("button", { type: "submit" }, registering ? "Create account" : "Sign in");
		const form = h(
			"form",
			{ class: "card narrow", "aria-labelledby": "auth-title" },
			h("h1", { id: "auth-title" }, registering ? "Create an account" : "Sign in"),
			reason ? h("p", { class: "notice", role: "status" }, reason) : null,
			field("Username", username, registering ? "3–32 characters: a–z, 0–9, _ . -" : undefined),
			field("Password", password, registering ? "At least 8 characters" : undefined),
			error,
			submit,
			h("p", {}, registering ? h("a", { href: "/signin" }, "I already have an account") : h("a", { href: "/register" }, "Create an account"))
		);
		form.addEventListener("submit", async event => {
			event.preventDefault();
			error.textContent = "";
			submit.disabled = true;
			try {
				const path = registering ? "/auth/register" : "/auth/login";
				const body = await api<{ token: string; user: PublicUser }>("POST", path, { username: username.value.trim(), password: password.value });
				setSession({ token: body.token, user: body.user });
			} catch (err) {
				error.textContent = (err as Error).message;
				submit.disabled = false;
				username.focus();
			}
		});
		main.append(form);
		username.focus();
	};
}
