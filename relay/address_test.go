package relay_test

import (
	"strings"
	"testing"

	"github.com/tainik/tainik/relay"
)

// canonical is a fingerprint as relay.Fingerprint prints it.
const canonical = "rsbttv3xskvqhn7oape6t347ud442zqqwa7yqi2zzgfuvmp4svaa"

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		in, fp, hostPort string
	}{
		{"tainik://" + canonical + "@127.0.0.1:7443", canonical, "127.0.0.1:7443"},
		{"TAINIK://" + strings.ToUpper(canonical) + "@relay.example:443", canonical, "relay.example:443"},
		{"tainik://[::1]:7443", "", "[::1]:7443"},
		{"tainik://relay.example:443", "", "relay.example:443"},
	} {
		a, err := relay.ParseAddress(c.in)
		if err != nil || a.Fingerprint != c.fp || a.HostPort != c.hostPort {
			t.Errorf("%s: %+v, %v; want fingerprint %q, %q", c.in, a, err, c.fp, c.hostPort)
		}
	}
	for _, in := range []string{
		"relay.example:443",
		"https://relay.example:443",
		"tainik://" + canonical[:51] + "b@h:1",                        // non-zero padding bits: never printed by Fingerprint
		"tainik://" + canonical[:20] + "\n" + canonical[20:] + "@h:1", // the decoder would skip the newline
		"tainik://" + canonical[:50] + "@h:1",                         // too short
		"tainik://" + canonical + "@:443",                             // no host
		"tainik://" + canonical + "@h:",                               // no port
		"tainik://" + canonical + "@h:99999",                          // port out of range
		"tainik://" + canonical + "@h:443/path",                       // a path
		"tainik://" + canonical + "@u@h:443",                          // user info
		"tainik://" + canonical + "@[fe80::1%eth0]:443",               // a zone
		"tainik://h:0443",                                             // a port not in its plain form
	} {
		if a, err := relay.ParseAddress(in); err == nil {
			t.Errorf("%q accepted as %+v", in, a)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	f.Add("tainik://" + canonical + "@127.0.0.1:7443")
	f.Add("tainik://[::1]:1")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := relay.ParseAddress(s)
		if err != nil {
			return
		}
		// What parses prints back to an address that parses the same.
		b, err := relay.ParseAddress(a.String())
		if err != nil || b != a {
			t.Fatalf("%q parsed as %+v, which prints as %q and parses as %+v, %v", s, a, a.String(), b, err)
		}
	})
}
