-- Queues are named by key, a hash of the recipient id; the sender id is
-- kept only as a hash too (see store.Queue).
CREATE TABLE queues (
	key           bytea PRIMARY KEY,
	sender_hash   bytea NOT NULL UNIQUE,
	recipient_key bytea NOT NULL,
	sender_key    bytea,
	contact       boolean NOT NULL,
	next_seq      bigint NOT NULL,
	count         integer NOT NULL
);

-- An acknowledged message stays as a tombstone (acked, no payload) until
-- it would have expired, so a sender's retry is recognised as a duplicate.
CREATE TABLE messages (
	queue   bytea NOT NULL REFERENCES queues (key) ON DELETE CASCADE,
	seq     bigint NOT NULL,
	msg_id  bytea NOT NULL,
	payload bytea,
	acked   boolean NOT NULL DEFAULT false,
	expires timestamptz NOT NULL,
	PRIMARY KEY (queue, seq),
	UNIQUE (queue, msg_id)
);
CREATE INDEX messages_expires ON messages (expires);

CREATE TABLE logs (
	id         bytea PRIMARY KEY,
	group_id   bytea NOT NULL,
	epoch      bigint NOT NULL,
	token_hash bytea NOT NULL,
	next_seq   bigint NOT NULL
);

CREATE TABLE entries (
	log     bytea NOT NULL,
	seq     bigint NOT NULL,
	epoch   bigint NOT NULL,
	commit  boolean NOT NULL,
	message bytea NOT NULL,
	expires timestamptz NOT NULL,
	PRIMARY KEY (log, seq)
);
CREATE INDEX entries_expires ON entries (expires);

-- Blobs are named by hashes of their two capabilities.
CREATE TABLE blobs (
	upload     bytea PRIMARY KEY,
	download   bytea NOT NULL UNIQUE,
	size       bigint NOT NULL,
	length     bigint NOT NULL,
	digest     bytea NOT NULL,
	complete   boolean NOT NULL,
	hash_state bytea,
	expires    timestamptz NOT NULL
);
CREATE INDEX blobs_expires ON blobs (expires);

CREATE TABLE chunks (
	upload bytea NOT NULL REFERENCES blobs (upload) ON DELETE CASCADE,
	off    bigint NOT NULL,
	len    integer NOT NULL,
	data   bytea NOT NULL,
	PRIMARY KEY (upload, off)
);
