package wsconn

// Find returns the open session with id, or nil when there is none (it
// ended, or never was). The server's API uses it to close one connection
// by its id. Safe from any goroutine.
func (r *Registry) Find(id uint64) *Session { return r.lookup(id) }
