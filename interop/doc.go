// Package interop holds the live interoperability tests of the mls package
// (RFC 9420) against ts-mls, an independent TypeScript implementation run
// as a Node program in tsmls/. See README.md.
package interop
