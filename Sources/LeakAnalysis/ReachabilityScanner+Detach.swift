
extension ReachabilityScanner {
    /// Stops using the guest's page-write log (before it is turned off, at detach): the cached
    /// frames can no longer be trusted, so a later scan reads everything it covers.
    public func stopUsingWriteLog() {
        state.withLock { s in
            s.writes = nil
            s.cache.invalidateAll()
            s.lastFrames = []
        }
    }
}
