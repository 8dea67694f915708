/**
 * The types of thumbhash's ES module, which web/build.ts copies next to this file as
 * vendor/thumbhash.js: the package's own declarations, not a copy.
 */
export * from "thumbhash";
