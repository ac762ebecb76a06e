package client

import (
	"testing"
	"time"
)

func FuzzParseInvitation(f *testing.F) {
	f.Add("tainik:invite/AEx0YWluaWs6Ly9hdHdweGhyZ2V1eDIzcHRsNWNqeDdyeDRrbnJ5ZnJ6ZmlzZnl5bGxjeG5naGltcjV6ajdxQDEyNy4wLjAuMTo3NDQzuqLE_MUwNYiEFzbW6HgHv9Vf5CKXCqfKJvKcr0QlxWugKoMWDui5LxZl9fF5im-eNYL-CyhkjZMTGeDfkoSPHNxxnKE2CQS1z6RmEqFTe24nkE_GI7sXtDNBH0KUIdlbAAAAAGsFnmNDTM8gHIzzaoYLd3jNCaepcFeimX8_9DeoviyFajIp79ct4QFDstEmCqdgFVH8if6eJWFui4fCUm89dD_kFEQM")
	f.Add("tainik:invite/")
	f.Fuzz(func(t *testing.T, link string) {
		inv, err := ParseInvitation(link, time.Unix(0, 0))
		if err != nil {
			return
		}
		// A link that parses re-encodes to itself.
		if got := inv.Link(); got != link {
			t.Errorf("Link() = %q, want %q", got, link)
		}
	})
}
