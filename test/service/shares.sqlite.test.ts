/** Share links on SQLite and files (shares.suite.ts). */
import { sharesSuite } from "./shares.suite.ts";

sharesSuite("SQLite", undefined, async () => ({ env: {}, stop: async () => {} }));
