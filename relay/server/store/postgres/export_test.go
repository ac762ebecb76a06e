package postgres

import "context"

// Isolation returns the transaction isolation of the store's connections.
func Isolation(ctx context.Context, s *Store) string {
	var level string
	if err := s.pool.QueryRow(ctx, "SHOW transaction_isolation").Scan(&level); err != nil {
		return err.Error()
	}
	return level
}
