import GuestMemory

extension AddressSpace {
    /// Writes `bytes` at user address `va` as a user-mode store would: the whole range is first
    /// checked with `checkUserAccess(.write)` (present, user, writable at every level), then copied
    /// page by page into the guest-physical frames it maps to. Throws the first fault; writes
    /// nothing when the check fails. Only guest RAM is ever written (`GuestMemory` bounds).
    public func writeUser(_ bytes: ArraySlice<UInt8>, at va: UInt64, noExecute: Bool = true) throws(UserAccessFault) {
        try checkUserAccess(va, count: bytes.count, .write, noExecute: noExecute)
        var offset = 0
        while offset < bytes.count {
            let at = va &+ UInt64(offset)
            guard let translation = try? translate(GuestVirtualAddress(at)) else {
                throw .pageFault(address: at, errorCode: UserAccessFault.user | UserAccessFault.write)
            }
            let count = min(bytes.count - offset, Int(translation.bytesToPageEnd))
            let start = bytes.startIndex + offset
            do { try memory.write(bytes[start..<(start + count)], at: translation.physicalAddress) } catch {
                throw .pageFault(address: at, errorCode: UserAccessFault.user | UserAccessFault.write | UserAccessFault.present)
            }
            offset += count
        }
    }
}
