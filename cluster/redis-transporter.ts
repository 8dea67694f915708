/**
 * Moleculer's Redis transporter, made safe for a cluster that must live through Redis restarts.
 * The stock class (moleculer 0.15.2, src/transporters/redis.js) has these faults, fixed here:
 *
 * 1. moleculer#1363, requests executed twice: a `connect()` attempt whose pub client fails is
 *    rejected and transit retries with a NEW sub/pub pair, but the old clients are never closed;
 *    ioredis keeps retrying the old pub and, once it connects, its `ready` handler subscribes the
 *    old sub too. Two subscribed clients deliver every packet twice, so every action runs twice.
 *    Here each transporter owns exactly one pub and one sub client, made in `connect()` after
 *    closing any left by an earlier attempt; reconnects are left to ioredis (which re-subscribes
 *    the same client), never answered with new clients.
 * 2. The stock `ready` handler of the sub client creates a new pub client on every reconnect and
 *    leaks the old one, which keeps reconnecting and calling `onConnected` on its own.
 * 3. `send` did not wait for PUBLISH, and ioredis queued commands while offline: a request
 *    "sent" during an outage was delivered late, perhaps after the caller had given up and
 *    retried. Here the offline queue is off and `send` returns PUBLISH's promise, so a request
 *    made while Redis is away fails at once with BrokerDisconnectedError (it never left: safe to
 *    retry), or with CallInterruptedError when PUBLISH fails as the connection drops.
 * 4. Calls in flight when the connection drops would wait for their timeout: Redis pub/sub keeps
 *    nothing, and a node's answers published while it is disconnected are dropped by transit. They
 *    are rejected at once with CallInterruptedError (503), which is never retried because the
 *    callee may have run the call.
 * 5. After the connection comes back, calls went to nodes that had not re-subscribed yet and were
 *    lost. Remote nodes now count as gone from the moment the connection drops until they are
 *    heard from again.
 */
import { Transporters, type Transit } from "moleculer";
import { Redis, type RedisOptions } from "ioredis";
import { CallInterruptedError } from "../models/shared/errors.ts";

export interface SafeRedisOptions {
	/** `redis://[user:password@]host:port[/db]` */
	url: string;
	/** Extra ioredis options (both clients). */
	redis?: RedisOptions;
}

interface PendingRequest {
	nodeID?: string;
	reject(err: Error): void;
}

type DestroyableStream = NodeJS.ReadableStream & { destroy?(err: Error): void };

type TransitInternals = Transit & {
	pendingRequests: Map<string, PendingRequest>;
	pendingReqStreams: Map<string, { sender: string; stream: DestroyableStream }>;
	pendingResStreams: Map<string, DestroyableStream>;
	removePendingRequest(id: string): void;
};

export class SafeRedisTransporter extends Transporters.Redis {
	declare clientPub: Redis | null;
	declare clientSub: Redis | null;
	private readonly url: string;
	private readonly redisOptions: RedisOptions;

	constructor(options: SafeRedisOptions) {
		super({});
		this.url = options.url;
		// No offline queue: a command while disconnected fails now instead of running later.
		this.redisOptions = { enableOfflineQueue: false, maxRetriesPerRequest: 0, ...options.redis };
	}

	connect(): Promise<void> {
		this.closeClients();
		return new Promise((resolve, reject) => {
			const sub = new Redis(this.url, this.redisOptions);
			const pub = new Redis(this.url, this.redisOptions);
			this.clientSub = sub;
			this.clientPub = pub;
			let everConnected = false;

			const onReady = () => {
				if (this.clientSub !== sub || sub.status !== "ready" || pub.status !== "ready" || this.connected) return;
				const wasReconnect = everConnected;
				everConnected = true;
				this.logger.info(wasReconnect ? "Redis reconnected." : "Redis pub and sub clients are connected.");
				this.onConnected(wasReconnect).then(() => resolve(), reject);
			};

			const onClose = (which: string) => () => {
				if (this.clientSub !== sub || !this.connected) return;
				this.connected = false;
				this.logger.warn(`Redis ${which} connection lost; failing the calls in flight and reconnecting.`);
				this.interruptInFlight();
				this.forgetRemoteNodes();
			};

			const onError = (which: string, type: string) => (err: Error) => {
				this.logger.warn(`Redis ${which} client: ${err.message}`);
				this.broker.broadcastLocal("$transporter.error", { error: err, module: "transporter", type });
			};

			sub.on("messageBuffer", (rawTopic: Buffer, buf: Buffer) => {
				// The topic is `<prefix>.<cmd>[.<nodeID>]`.
				const cmd = rawTopic.toString().substring(this.prefix.length + 1).split(".")[0];
				this.receive(cmd, buf);
			});
			sub.on("ready", onReady);
			pub.on("ready", onReady);
			sub.on("close", onClose("sub"));
			pub.on("close", onClose("pub"));
			sub.on("error", onError("sub", "failedConsumerError"));
			pub.on("error", onError("pub", "failedPublisherError"));
		});
	}

	disconnect(): Promise<void> {
		this.connected = false;
		this.closeClients();
		return Promise.resolve();
	}

	subscribe(cmd: string, nodeID?: string): Promise<void> {
		return this.clientSub!.subscribe(this.getTopicName(cmd, nodeID)).then(() => undefined);
	}

	send(topic: string, data: Buffer): Promise<void> {
		// Transit's `prepublish` already refuses calls while disconnected (BrokerDisconnectedError).
		if (!this.clientPub) return Promise.reject(new Error("The Redis transporter is stopped"));
		// A PUBLISH failing as the connection drops may or may not have reached Redis: the packet
		// (a request, say) may be acted on, so this is not the retryable "never sent" error.
		return this.clientPub.publish(topic, data).then(
			() => undefined,
			() => Promise.reject(new CallInterruptedError())
		);
	}

	private closeClients(): void {
		for (const client of [this.clientSub, this.clientPub]) client?.disconnect();
		this.clientSub = null;
		this.clientPub = null;
	}

	/**
	 * While disconnected this node learns nothing about the others, and after a Redis restart a
	 * node that has not re-subscribed yet silently misses what is published to it: a call sent
	 * there would wait for its timeout. So every remote node counts as gone until it is heard
	 * from again (its heartbeat or INFO, which it sends only once it is connected again).
	 */
	private forgetRemoteNodes(): void {
		for (const node of this.broker.registry.nodes.toArray()) {
			if (!node.local) this.broker.registry.nodes.disconnected(node.id, false);
		}
	}

	/**
	 * Rejects the remote calls this node waits for, and ends the request and response streams it
	 * receives. A response stream (a blob from storage.get, say) already handed to its caller
	 * would otherwise wait for its next chunk forever: a job reading it never ended, and its
	 * worker kept it from every other worker.
	 */
	private interruptInFlight(): void {
		const transit = this.transit as TransitInternals;
		// First: removing a pending request below forgets its response stream.
		for (const [id, stream] of transit.pendingResStreams) {
			transit.pendingResStreams.delete(id);
			stream.on("error", () => undefined);
			stream.destroy?.(new CallInterruptedError());
		}
		for (const [id, request] of transit.pendingRequests) {
			if (request.nodeID === this.nodeID) continue;
			transit.removePendingRequest(id);
			request.reject(new CallInterruptedError(request.nodeID));
		}
		for (const [id, { stream }] of transit.pendingReqStreams) {
			transit.pendingReqStreams.delete(id);
			stream.on("error", () => undefined);
			stream.destroy?.(new CallInterruptedError());
		}
	}
}
