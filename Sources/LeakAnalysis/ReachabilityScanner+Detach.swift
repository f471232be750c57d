import GuestMemory

extension ReachabilityScanner {
    /// Stops using the guest's page-write log (before it is turned off, at detach): the cached
    /// frames can no longer be trusted, so a later scan reads everything it covers. Returns the
    /// reader it used, for `InspectableGuest.stopWriteLog`.
    @discardableResult
    public func stopUsingWriteLog() -> (any GuestWriteTracking)? {
        state.withLock { s in
            defer { s.writes = nil }
            s.cache.invalidateAll()
            s.lastFrames = []
            return s.writes
        }
    }
}
