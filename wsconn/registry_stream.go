package wsconn

// addStream registers s, or reports why not; the caps and the shutdown
// apply to streams exactly as to sessions.
func (r *Registry) addStream(s *Stream) Admission {
	r.mu.Lock()
	defer r.mu.Unlock()
	if why := r.admission(s.peer); why != Admitted {
		return why
	}
	r.streams[s.id] = s
	r.addPeer(s.peer)
	return Admitted
}

func (r *Registry) removeStream(s *Stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.streams[s.id]; !ok {
		return
	}
	delete(r.streams, s.id)
	r.dropPeer(s.peer)
	r.emptiedIfDone()
}

// FindStream returns the open stream with id, or nil. Safe from any
// goroutine.
func (r *Registry) FindStream(id uint64) *Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.streams[id]
}

// addPeer and dropPeer count a member against its peer's cap; r.mu is held.
func (r *Registry) addPeer(peer string) {
	if r.maxPeer > 0 && peer != "" {
		r.perPeer[peer]++
	}
}

func (r *Registry) dropPeer(peer string) {
	if r.maxPeer <= 0 || peer == "" {
		return
	}
	if n := r.perPeer[peer] - 1; n > 0 {
		r.perPeer[peer] = n
	} else {
		delete(r.perPeer, peer)
	}
}

func (r *Registry) streamSnapshot() []*Stream {
	out := make([]*Stream, 0, len(r.streams))
	for _, s := range r.streams {
		out = append(out, s)
	}
	return out
}
