// Custom schema keys imgmesh uses on Moleculer's action schemas (moleculer-web adds `rest`) (type-only; this
// file is part of the type check, never imported at run time). It must be a .ts file: with
// skipLibCheck a .d.ts augmentation of "moleculer" is silently dropped.
import type {} from "moleculer";

declare module "moleculer" {
	interface ActionSchema<TThis> {
		/**
		 * Who may call the action through the gateway: "public" (anyone), "optional" (anyone;
		 * the user is identified when a token is sent), "user" (a valid token; the default)
		 * or "admin" (a valid token of an admin).
		 */
		auth?: "public" | "optional" | "user" | "admin";
		/** Moleculer's per-action call timeout in ms (0: none), used when the caller sets none; missing from its types. */
		timeout?: number;
	}

	interface ServiceSchema {
		/** Durable queue consumers (@moleculer/channels, see cluster/channels.ts). */
		channels?: Record<string, ChannelSchema>;
	}

	interface ChannelSchema {
		/** Consumer group; defaults to the service's full name. */
		group?: string;
		maxInFlight?: number;
		maxRetries?: number;
		context?: boolean;
		deadLettering?: { enabled: boolean; queueName: string };
		handler(this: any, payload: any, raw?: unknown): Promise<unknown> | unknown;
	}

	interface ServiceBroker {
		/** Added by the channels middleware. */
		sendToChannel(name: string, payload: unknown, options?: Record<string, unknown>): Promise<void>;
	}
}
