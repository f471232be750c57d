/// A virtio-blk request split out of its descriptor chain: the 16-byte header from the
/// device-readable bytes, the status byte as the last device-writable byte, and the data between.
struct VirtioBlockRequest {
    let type: UInt32
    let sector: UInt64
    /// Data buffers: device-readable after the header (OUT), or device-writable before the status (IN, GET_ID).
    let data: [VirtioBuffer]
    let statusAddress: UInt64

    var dataLength: UInt32 { data.reduce(0) { $0 &+ $1.length } }

    init(chain: [VirtioBuffer], memory: any VirtioMemory) throws(VirtioError) {
        var readable = chain.filter { !$0.writable && $0.length > 0 }
        var writable = chain.filter { $0.writable && $0.length > 0 }
        var header: [UInt8] = []
        while header.count < 16, !readable.isEmpty {
            let first = readable.removeFirst()
            let take = min(Int(first.length), 16 - header.count)
            do { header += try memory.read(at: first.address, count: take) } catch {
                throw .outOfBounds(address: first.address, count: take)
            }
            if take < Int(first.length) {
                readable.insert(VirtioBuffer(address: first.address + UInt64(take), length: first.length - UInt32(take), writable: false), at: 0)
            }
        }
        guard header.count == 16 else { throw .malformedRequest("header shorter than 16 bytes") }
        guard let last = writable.popLast() else { throw .malformedRequest("no status byte") }
        statusAddress = last.address + UInt64(last.length) - 1
        if last.length > 1 { writable.append(VirtioBuffer(address: last.address, length: last.length - 1, writable: true)) }
        type = (0..<4).reduce(0) { $0 | UInt32(header[$1]) << (8 * $1) }
        sector = (0..<8).reduce(0) { $0 | UInt64(header[8 + $1]) << (8 * $1) }
        data = type == 1 ? readable : writable
        let total = data.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        guard total <= UInt64(UInt32.max) else { throw .malformedRequest("data longer than 4 GiB") }
    }

    /// Scatters `bytes` over the data buffers; false if they do not fit or a write fails.
    func writeData(_ bytes: [UInt8], memory: any VirtioMemory) -> Bool {
        var offset = 0
        for buffer in data where offset < bytes.count {
            let n = min(Int(buffer.length), bytes.count - offset)
            guard (try? memory.write(Array(bytes[offset..<offset + n]), at: buffer.address)) != nil else { return false }
            offset += n
        }
        return offset == bytes.count
    }
}
