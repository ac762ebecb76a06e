// driver.mjs is one ts-mls group member, driven by the Go interoperability
// tests (package interop). It reads one JSON command per line on stdin and
// writes one JSON response per line on stdout; bytes travel as hex. Errors
// are answered as {"error": "...", "stack": "..."}, and logged to stderr.
//
// Every MLS message crosses the pipe as an encoded MLSMessage (RFC 9420,
// Section 6), exactly as a delivery service would carry it.

import { createInterface } from "node:readline";
import {
  acceptAll,
  createApplicationMessage,
  createCommit,
  createGroup,
  createProposal,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackage,
  ciphersuites,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup,
  joinGroupExternal,
  makePskIndex,
  mlsExporter,
  processMessage,
} from "ts-mls";
import { createGroupInfo } from "ts-mls/createCommit.js";
import { decodeRatchetTree, ratchetTreeEncoder } from "ts-mls/ratchetTree.js";
import { encode as encodeWith } from "ts-mls/codec/tlsEncoder.js";

const hex = (b) => Buffer.from(b).toString("hex");
const unhex = (s) => new Uint8Array(Buffer.from(s, "hex"));

function decode(s, want) {
  const decoded = decodeMlsMessage(unhex(s), 0);
  if (decoded === undefined) throw new Error("cannot decode MLSMessage");
  const [msg, n] = decoded;
  if (n !== s.length / 2) throw new Error(`trailing bytes after MLSMessage (${n} of ${s.length / 2} read)`);
  if (want !== undefined && msg.wireformat !== want) throw new Error(`got ${msg.wireformat}, want ${want}`);
  return msg;
}

const encode = (msg) => hex(encodeMlsMessage(msg));

// opaqueV encodes data as opaque<V>: a variable-length integer length
// prefix (RFC 9420, Section 2.1.2), then the data.
function opaqueV(data) {
  const n = data.length;
  let prefix;
  if (n < 1 << 6) prefix = [n];
  else if (n < 1 << 14) prefix = [0x40 | (n >> 8), n & 0xff];
  else if (n < 1 << 30) prefix = [0x80 | (n >>> 24), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  else throw new Error("opaque<V> too long");
  const out = new Uint8Array(prefix.length + n);
  out.set(prefix, 0);
  out.set(data, prefix.length);
  return out;
}

// readOpaqueV decodes exactly one opaque<V>, rejecting non-minimal
// lengths and trailing bytes.
function readOpaqueV(b) {
  if (b.length === 0) throw new Error("opaque<V>: empty");
  const size = 1 << (b[0] >> 6);
  if (size > 4 || b.length < size) throw new Error("opaque<V>: bad length prefix");
  let n = b[0] & 0x3f;
  for (let i = 1; i < size; i++) n = n * 256 + b[i];
  const min = size === 1 ? 0 : size === 2 ? 1 << 6 : 1 << 14;
  if (n < min) throw new Error("opaque<V>: non-minimal length");
  if (b.length !== size + n) throw new Error("opaque<V>: length does not match");
  return b.subarray(size);
}

// The member's state: one member per process.
let impl; // CiphersuiteImpl
let identity;
let pending; // { publicPackage, privatePackage } of the last key package
let state; // ClientState

function leafCount(tree) {
  let n = 0;
  for (let i = 0; i < tree.length; i += 2) if (tree[i] !== undefined) n++;
  return n;
}

async function newKeyPackage() {
  const credential = { credentialType: "basic", identity: new TextEncoder().encode(identity) };
  return generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], impl);
}

function needState() {
  if (state === undefined) throw new Error("not in a group");
}

const ops = {
  async init({ suite, name: member }) {
    const name = Object.keys(ciphersuites).find((k) => ciphersuites[k] === suite);
    if (name === undefined) throw new Error(`ts-mls has no cipher suite ${suite}`);
    impl = await getCiphersuiteImpl(getCiphersuiteFromName(name));
    identity = member;
    return {};
  },

  async keyPackage() {
    pending = await newKeyPackage();
    return { keyPackage: encode({ version: "mls10", wireformat: "mls_key_package", keyPackage: pending.publicPackage }) };
  },

  async createGroup({ groupId }) {
    const kp = await newKeyPackage();
    state = await createGroup(unhex(groupId), kp.publicPackage, kp.privatePackage, [], impl);
    return {};
  },

  async join({ welcome, ratchetTree }) {
    if (pending === undefined) throw new Error("no key package to join with");
    const w = decode(welcome, "mls_welcome");
    let tree;
    if (ratchetTree) {
      const decoded = decodeRatchetTree(unhex(ratchetTree), 0);
      if (decoded === undefined || decoded[1] !== ratchetTree.length / 2) throw new Error("cannot decode ratchet tree");
      tree = decoded[0];
    }
    state = await joinGroup(w.welcome, pending.publicPackage, pending.privatePackage, emptyPskIndex, impl, tree);
    pending = undefined;
    return {};
  },

  // commit commits the proposals received so far, plus adds and removes
  // given by value. ts-mls adds an UpdatePath whenever RFC 9420,
  // Section 12.4 requires one, so an empty commit carries a path. With
  // treeOutOfBand, the Welcome's GroupInfo has no ratchet_tree extension
  // and the tree comes back separately.
  async commit({ add = [], remove = [], treeOutOfBand = false }) {
    needState();
    const extraProposals = [
      ...remove.map((leaf) => ({ proposalType: "remove", remove: { removed: leaf } })),
      ...add.map((kp) => ({ proposalType: "add", add: { keyPackage: decode(kp, "mls_key_package").keyPackage } })),
    ];
    const res = await createCommit(
      { state, cipherSuite: impl, pskIndex: makePskIndex(state, {}) },
      { extraProposals, ratchetTreeExtension: !treeOutOfBand },
    );
    state = res.newState;
    const out = { commit: encode(res.commit) };
    if (treeOutOfBand) out.ratchetTree = hex(encodeWith(ratchetTreeEncoder)(state.ratchetTree));
    if (res.welcome !== undefined) {
      out.welcome = encode({ version: "mls10", wireformat: "mls_welcome", welcome: res.welcome });
    }
    return out;
  },

  // propose sends an Add (of keyPackage) or a Remove (of leaf) proposal.
  async propose({ add, remove }) {
    needState();
    const proposal =
      add !== undefined
        ? { proposalType: "add", add: { keyPackage: decode(add, "mls_key_package").keyPackage } }
        : { proposalType: "remove", remove: { removed: remove } };
    const res = await createProposal(state, false, proposal, impl);
    state = res.newState;
    return { message: encode(res.message) };
  },

  async encrypt({ data }) {
    needState();
    const res = await createApplicationMessage(state, unhex(data), impl);
    state = res.newState;
    return { message: encode({ version: "mls10", wireformat: "mls_private_message", privateMessage: res.privateMessage }) };
  },

  async process({ message }) {
    needState();
    const msg = decode(message);
    if (msg.wireformat !== "mls_private_message" && msg.wireformat !== "mls_public_message") {
      throw new Error(`cannot process ${msg.wireformat}`);
    }
    const epoch = state.groupContext.epoch;
    const res = await processMessage(msg, state, makePskIndex(state, {}), acceptAll, impl);
    state = res.newState;
    if (res.kind === "applicationMessage") return { kind: "application", data: hex(res.message) };
    if (res.actionTaken !== "accept") throw new Error(`message ${res.actionTaken}ed`);
    if (state.groupActiveState.kind === "removedFromGroup") return { kind: "removed" };
    return { kind: state.groupContext.epoch !== epoch ? "commit" : "proposal" };
  },

  // groupInfo returns a GroupInfo for external joiners. ts-mls 1.6.4 puts
  // the bare public key in the external_pub extension, where RFC 9420,
  // Section 12.4.3.2 has the struct ExternalPub { HPKEPublicKey
  // external_pub; }, that is the key as opaque<V> with its length prefix;
  // so the driver builds the GroupInfo itself, as ts-mls would with the
  // extension encoded per the RFC (see ../README.md).
  async groupInfo() {
    needState();
    const kp = await impl.hpke.deriveKeyPair(state.keySchedule.externalSecret);
    const externalPub = await impl.hpke.exportPublicKey(kp.publicKey);
    const gi = await createGroupInfo(state.groupContext, state.confirmationTag, state, [
      { extensionType: "external_pub", extensionData: opaqueV(externalPub) },
      { extensionType: "ratchet_tree", extensionData: encodeWith(ratchetTreeEncoder)(state.ratchetTree) },
    ], impl);
    return { groupInfo: encode({ version: "mls10", wireformat: "mls_group_info", groupInfo: gi }) };
  },

  // externalJoin joins by external commit. As ts-mls 1.6.4 reads the
  // external_pub extension as a bare key (see groupInfo), the driver reads
  // the RFC's ExternalPub struct and hands ts-mls the key inside it, by
  // wrapping importPublicKey for that one extension value only; the
  // GroupInfo, whose signature ts-mls checks, stays as received.
  async externalJoin({ groupInfo }) {
    const gi = decode(groupInfo, "mls_group_info");
    const ext = gi.groupInfo.extensions.find((e) => e.extensionType === "external_pub");
    if (ext === undefined) throw new Error("GroupInfo has no external_pub extension");
    const key = readOpaqueV(ext.extensionData);
    const hpke = impl.hpke;
    const cs = {
      ...impl,
      hpke: { ...hpke, importPublicKey: (k) => hpke.importPublicKey(k === ext.extensionData ? key : k) },
    };
    const kp = await newKeyPackage();
    const res = await joinGroupExternal(gi.groupInfo, kp.publicPackage, kp.privatePackage, false, cs);
    state = res.newState;
    return { commit: encode({ version: "mls10", wireformat: "mls_public_message", publicMessage: res.publicMessage }) };
  },

  async state({ label = "", context = "", length = 32 }) {
    needState();
    return {
      epoch: Number(state.groupContext.epoch),
      epochAuthenticator: hex(state.keySchedule.epochAuthenticator),
      exporter: hex(await mlsExporter(state.keySchedule.exporterSecret, label, unhex(context), length, impl)),
      leaf: state.privatePath.leafIndex,
      members: leafCount(state.ratchetTree),
      active: state.groupActiveState.kind === "active",
    };
  },
};

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (line.trim() === "") continue;
  let resp;
  try {
    const cmd = JSON.parse(line);
    const op = ops[cmd.op];
    if (op === undefined) throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
    resp = await op(cmd);
  } catch (e) {
    process.stderr.write(`driver: ${e && e.stack ? e.stack : e}\n`);
    resp = { error: String(e && e.message ? e.message : e), stack: String(e && e.stack ? e.stack : "") };
  }
  process.stdout.write(JSON.stringify(resp) + "\n");
}
