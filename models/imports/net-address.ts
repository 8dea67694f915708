/**
 * Which IP addresses an import may connect to. A fetch on behalf of a user must never reach the
 * machine itself, the private network behind it or a cloud metadata endpoint (SSRF), however the
 * address is spelled: IPv4, IPv6, IPv4-mapped/compatible IPv6, NAT64 or 6to4 forms of a private
 * IPv4 address all count as that IPv4 address. Tests may open the private ranges (loopback) with
 * IMPORT_ALLOW_PRIVATE_NETWORKS; metadata and link-local addresses stay closed even then.
 */
import { BlockList, isIP } from "node:net";

/** Private networks: refused, except where IMPORT_ALLOW_PRIVATE_NETWORKS lets tests use loopback. */
const privateNets = new BlockList();
/** Never a destination, whatever the configuration: metadata services, link-local, multicast, reserved. */
const reservedNets = new BlockList();

const PRIVATE_V4: [string, number][] = [
	["10.0.0.0", 8],
	["100.64.0.0", 10], // carrier-grade NAT
	["127.0.0.0", 8], // loopback
	["172.16.0.0", 12],
	["192.168.0.0", 16]
];
const RESERVED_V4: [string, number][] = [
	["0.0.0.0", 8], // "this network", unspecified
	["169.254.0.0", 16], // link-local, incl. the 169.254.169.254 metadata service
	["192.0.0.0", 24], // IETF protocol assignments (incl. 192.0.0.192, a metadata address)
	["192.0.2.0", 24], // documentation
	["192.88.99.0", 24], // 6to4 relay anycast
	["198.18.0.0", 15], // benchmarking
	["198.51.100.0", 24], // documentation
	["203.0.113.0", 24], // documentation
	["224.0.0.0", 4], // multicast
	["240.0.0.0", 4] // reserved, incl. broadcast
];
const PRIVATE_V6: [string, number][] = [
	["::1", 128], // loopback
	["fc00::", 7] // unique local
];
const RESERVED_V6: [string, number][] = [
	["::", 128], // unspecified
	["fd00:ec2::254", 128], // AWS's IPv6 metadata service (inside the unique-local range)
	["64:ff9b:1::", 48], // local-use NAT64
	["100::", 64], // discard
	["2001:db8::", 32], // documentation
	["fe80::", 10], // link-local
	["fec0::", 10], // site-local (deprecated, still routed by some stacks)
	["ff00::", 8] // multicast
];
for (const [net, prefix] of PRIVATE_V4) privateNets.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of RESERVED_V4) reservedNets.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of PRIVATE_V6) privateNets.addSubnet(net, prefix, "ipv6");
for (const [net, prefix] of RESERVED_V6) reservedNets.addSubnet(net, prefix, "ipv6");

/** Parses an IPv6 address into its 8 groups; null when it is not one. */
function ipv6Groups(address: string): number[] | null {
	if (isIP(address) !== 6) return null;
	let text = address.toLowerCase().split("%")[0]!;
	// A dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
	const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
	if (dotted) {
		const [a, b, c, d] = dotted[1]!.split(".").map(Number) as [number, number, number, number];
		text = text.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
	}
	const [head, tail] = text.split("::") as [string, string | undefined];
	const parse = (part: string) => (part ? part.split(":").map(group => parseInt(group, 16)) : []);
	const left = parse(head);
	const right = tail === undefined ? [] : parse(tail);
	const zeros = 8 - left.length - right.length;
	return [...left, ...Array<number>(Math.max(0, zeros)).fill(0), ...right];
}

const ipv4Of = (high: number, low: number) => `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;

/** The IPv4 address an IPv6 address embeds (mapped, compatible, NAT64, 6to4), if any. */
export function embeddedIpv4(address: string): string | null {
	const g = ipv6Groups(address);
	if (!g) return null;
	const zeroUpTo = (n: number) => g.slice(0, n).every(group => group === 0);
	if (zeroUpTo(5) && g[5] === 0xffff) return ipv4Of(g[6]!, g[7]!); // ::ffff:a.b.c.d
	if (zeroUpTo(6) && (g[6] !== 0 || g[7]! > 1)) return ipv4Of(g[6]!, g[7]!); // ::a.b.c.d (deprecated)
	if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every(group => group === 0)) return ipv4Of(g[6]!, g[7]!); // NAT64
	if (g[0] === 0x2002) return ipv4Of(g[1]!, g[2]!); // 6to4
	return null;
}

export type AddressClass = "public" | "private" | "reserved";

function classify(address: string, family: "ipv4" | "ipv6"): AddressClass {
	if (reservedNets.check(address, family)) return "reserved";
	return privateNets.check(address, family) ? "private" : "public";
}

/**
 * "public" when the address is globally routable; "private" for loopback, RFC 1918, CGNAT and
 * unique-local addresses; "reserved" for everything that is never a destination (unspecified,
 * link-local and metadata, multicast, documentation, ...) and for anything unparsable.
 */
export function addressClass(address: string): AddressClass {
	const family = isIP(address);
	if (family === 4) return classify(address, "ipv4");
	if (family !== 6) return "reserved";
	const v4 = embeddedIpv4(address);
	if (v4 !== null) return classify(v4, "ipv4");
	return classify(address.split("%")[0]!, "ipv6");
}

/** Whether an import may connect to the address. */
export function mayConnect(address: string, allowPrivateNetworks: boolean): boolean {
	const kind = addressClass(address);
	return kind === "public" || (kind === "private" && allowPrivateNetworks);
}
