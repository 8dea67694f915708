/**
 * Gateway authentication and authorization, mixed into the api service. A Bearer JWT (HS256) is
 * verified locally; the user behind it is then confirmed with `users.identify` (cached on the
 * users nodes), so a deleted or disabled account stops working at once, and so does every token
 * issued before the account's token version moved (password change, "sign out everywhere"): the
 * version rides in the cached identity, so this costs no database read per request. Each action
 * declares who may call it with its `auth` key ("public" | "optional" | "user" | "admin"; default
 * "user").
 */
import type { Context, ServiceSchema } from "moleculer";
import type { IncomingMessage } from "node:http";
import { getConfig } from "../config/index.ts";
import { ForbiddenError, UnauthorizedError } from "../models/shared/errors.ts";
import { TokenSigner } from "../models/users/token.ts";
import type { AuthUser, Identity } from "../models/users/user.ts";

type AuthLevel = "public" | "optional" | "user" | "admin";

interface GatewayRequest extends IncomingMessage {
	$action?: { auth?: AuthLevel };
}

function bearerToken(req: IncomingMessage): string | null {
	const header = req.headers.authorization;
	if (!header) return null;
	const [scheme, token] = header.split(" ");
	if (scheme?.toLowerCase() !== "bearer" || !token) throw new UnauthorizedError("Malformed Authorization header", "INVALID_TOKEN");
	return token;
}

const tokens = new TokenSigner(getConfig().jwtSecret, getConfig().jwtExpiresIn);

export const AuthMixin: Partial<ServiceSchema> = {
	methods: {
		/** moleculer-web `authentication` hook: the user, or null for anonymous requests. */
		async authenticate(ctx: Context, _route: unknown, req: GatewayRequest): Promise<AuthUser | null> {
			// Public actions (login, health) ignore tokens, so a stale one never blocks signing in.
			if (req.$action?.auth === "public") return null;
			const token = bearerToken(req);
			if (!token) return null;
			const claims = tokens.verify(token);
			const { tokenVersion, ...user } = await ctx.call<Identity, { id: string }>("users.identify", { id: claims.userId });
			if (claims.tokenVersion !== tokenVersion) throw new UnauthorizedError("Token revoked: sign in again", "TOKEN_REVOKED");
			return user;
		},

		/** moleculer-web `authorization` hook: enforces the action's `auth` level. */
		async authorize(ctx: Context<unknown, { user?: AuthUser | null }>, _route: unknown, req: GatewayRequest): Promise<void> {
			const level: AuthLevel = req.$action?.auth ?? "user";
			if (level === "public" || level === "optional") return;
			const user = ctx.meta.user;
			if (!user) throw new UnauthorizedError();
			if (level === "admin" && user.role !== "admin") throw new ForbiddenError("Administrators only", "ADMIN_ONLY");
		}
	}
};
