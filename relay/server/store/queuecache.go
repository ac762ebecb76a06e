package store

import (
	"sync"

	"github.com/tainik/tainik/relay"
)

// queueCache remembers queues looked up by sender identifier, so that a
// send does not read the store before it writes. Only a store that is the
// sole writer of its queues may use one: it drops a queue from the cache
// when it changes the queue (lock, delete), and the generation counter
// keeps a lookup that raced with such a change from putting back what it
// read before. Cached queues carry no message count.
type queueCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[relay.ID]Queue // by the hashed identifier
}

// queueCacheSize bounds the cache; a full cache starts over.
const queueCacheSize = 1 << 17

func (c *queueCache) get(h relay.ID) (Queue, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.m[h]
	return q, c.gen, ok
}

// put stores q under h unless the cache changed since gen.
func (c *queueCache) put(h relay.ID, q Queue, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil || len(c.m) >= queueCacheSize {
		c.m = make(map[relay.ID]Queue)
	}
	c.m[h] = q
}

// forget drops the queue whose hashed sender identifier is h.
func (c *queueCache) forget(h relay.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, h)
}
