package mls

import "errors"

// pendingCommit is a commit this member made and sent, staged until the
// relay accepts it.
type pendingCommit struct {
	ac      *AuthenticatedContent
	st      *stagedCommit
	message *MLSMessage
}

// MergePendingCommit makes the pending commit's epoch current, once the
// relay has accepted the commit.
func (g *Group) MergePendingCommit() (*CommitResult, error) {
	if g.pending == nil {
		return nil, errors.New("mls: no commit is pending")
	}
	res := g.adopt(g.pending.st)
	res.Own = true
	return res, nil
}

// DiscardPendingCommit drops the pending commit, when the relay accepted
// another commit for this epoch.
func (g *Group) DiscardPendingCommit() {
	g.pending = nil
}
