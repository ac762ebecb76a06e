module github.com/tainik/tainik

go 1.26.8

require (
	github.com/cloudflare/circl v1.6.5 // indirect
	golang.org/x/crypto v0.58.0 // indirect
)
