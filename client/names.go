package client

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// maxNameRunes bounds a group name another member chooses.
const maxNameRunes = 64

// cleanName makes a group name chosen by another member (a rename, a
// group invitation) safe to show and to type: no control characters (a
// terminal would act on escape sequences), no bidirectional or invisible
// formatting characters (which can make one name look like another), no
// invalid UTF-8, single spaces, at most maxNameRunes runes.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	n := 0
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if n == maxNameRunes {
			break
		}
		if space {
			if n+1 == maxNameRunes {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// checkGroupName refuses a name for a new or renamed group that other
// members would see changed by cleanName, or that is taken here.
func (c *Client) checkGroupName(name string) error {
	if name == "" {
		return errors.New("client: a group needs a name")
	}
	if cleanName(name) != name {
		return fmt.Errorf("client: %q is not a usable group name: use at most %d characters, no control or formatting characters, single spaces", name, maxNameRunes)
	}
	if _, err := c.FindConversation(name); err == nil {
		return fmt.Errorf("client: a contact or group named %q exists already: choose another name", name)
	}
	return nil
}
