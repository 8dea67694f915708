/**
 * Gives a service its repository: opened when the service is created, closed when it stops,
 * and checked by a `ping` action that readiness probes call.
 */
import type { ServiceSchema } from "moleculer";
import { UnavailableError } from "../models/shared/errors.ts";

export interface Backend {
	ping(): Promise<boolean>;
	close(): Promise<void>;
}

export function repositoryMixin(open: () => Backend, what: string): Partial<ServiceSchema> {
	return {
		actions: {
			ping: {
				visibility: "public",
				params: { $$strict: true },
				async handler() {
					const ok = await this.repo.ping().catch(() => false);
					if (!ok) throw new UnavailableError(`${what} is unavailable`);
					return { ok: true };
				}
			}
		},
		created() {
			this.repo = open();
		},
		async stopped() {
			await this.repo.close();
		}
	};
}
