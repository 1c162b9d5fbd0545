package realtime

import (
	"hash/maphash"
	"slices"
	"sync"
)

// userIndex finds this node's clients by user id, for the API's
// disconnect and unsubscribe. It is sharded like the hub's channels, so
// connects of many users do not contend on one lock. Only clients signed
// in as a user are in it: a guest costs it nothing, and a user one slice
// slot (plus the map entry of its first connection).
//
// Concurrency: safe for concurrent use; each shard's lock is held only
// for map access, never while a client is called.
type userIndex struct {
	seed   maphash.Seed
	shards [hubShards]userShard
}

type userShard struct {
	mu    sync.RWMutex
	users map[string][]*Client // made on first use
}

func (x *userIndex) shard(user string) *userShard {
	return &x.shards[maphash.String(x.seed, user)%hubShards]
}

// move files c under user to instead of from ("" for a guest: not filed).
func (x *userIndex) move(c *Client, from, to string) {
	if from == to {
		return
	}
	x.remove(c, from)
	if to == "" {
		return
	}
	sh := x.shard(to)
	sh.mu.Lock()
	if sh.users == nil {
		sh.users = make(map[string][]*Client)
	}
	sh.users[to] = append(sh.users[to], c)
	sh.mu.Unlock()
}

// remove takes c out from under user.
func (x *userIndex) remove(c *Client, user string) {
	if user == "" {
		return
	}
	sh := x.shard(user)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.users[user]
	i := slices.Index(list, c)
	if i < 0 {
		return
	}
	if len(list) == 1 {
		delete(sh.users, user)
		return
	}
	sh.users[user] = slices.Delete(list, i, i+1) // lookup hands out copies only
}

// lookup returns user's clients on this node; the slice is the caller's.
func (x *userIndex) lookup(user string) []*Client {
	sh := x.shard(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return slices.Clone(sh.users[user])
}

// count is the number of distinct users connected to this node.
func (x *userIndex) count() int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.RLock()
		n += len(sh.users)
		sh.mu.RUnlock()
	}
	return n
}
