#if canImport(Glibc)
import Glibc
#endif

/// A virtio block device (type 2) backed by a raw image file: IN, OUT, FLUSH and GET_ID, served
/// with pread/pwrite on the image's file descriptor.
public final class VirtioBlock: VirtioDeviceBackend {
    public static let sectorSize: UInt64 = 512
    static let featureSegMax: UInt64 = 1 << 2
    static let featureReadOnly: UInt64 = 1 << 5
    static let featureFlush: UInt64 = 1 << 9

    enum RequestType: UInt32 { case read = 0, write = 1, flush = 4, getID = 8 }
    enum Status: UInt8 { case ok = 0, ioError = 1, unsupported = 2 }

    public let deviceID: UInt32 = 2
    public let queueCount = 1
    public let queueMaxSize: UInt16 = 256
    public let readOnly: Bool
    /// Capacity in 512-byte sectors (a trailing partial sector is not exposed).
    public let capacity: UInt64
    public let serial: String
    private let fd: Int32

    /// Opens `path` read-write, or read-only when `readOnly`.
    public convenience init(path: String, readOnly: Bool) throws(VirtioBlockError) {
        let fd = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard fd >= 0 else { throw .open(path: path, errno: errno) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFBLK else {
            close(fd)
            throw .notAFile(path: path)
        }
        var size = UInt64(st.st_size)
        if (st.st_mode & S_IFMT) == S_IFBLK { size = UInt64(max(0, lseek(fd, 0, SEEK_END))) }
        let name = path.split(separator: "/").last.map(String.init) ?? "disk"
        self.init(fd: fd, size: size, readOnly: readOnly, serial: name)
    }

    /// Takes ownership of `fd` (closed on deinit).
    public init(fd: Int32, size: UInt64, readOnly: Bool, serial: String) {
        self.fd = fd
        self.capacity = size / Self.sectorSize
        self.readOnly = readOnly
        self.serial = serial
    }

    deinit { close(fd) }

    public var features: UInt64 {
        VirtioConstants.featureVersion1 | Self.featureFlush | Self.featureSegMax | (readOnly ? Self.featureReadOnly : 0)
    }

    /// virtio_blk_config: capacity (le64) at 0, size_max at 8, seg_max at 12, geometry at 16, blk_size at 20.
    public var config: [UInt8] {
        var c = [UInt8](repeating: 0, count: 24)
        for i in 0..<8 { c[i] = UInt8(truncatingIfNeeded: capacity >> (8 * UInt64(i))) }
        let segMax = UInt32(queueMaxSize) - 2
        for i in 0..<4 { c[12 + i] = UInt8(truncatingIfNeeded: segMax >> (8 * UInt32(i))) }
        return c
    }

    public func handle(queue: Int, chain: [VirtioBuffer], memory: any VirtioMemory) throws(VirtioError) -> UInt32 {
        let request = try VirtioBlockRequest(chain: chain, memory: memory)
        var written: UInt32 = 0
        let status: Status
        switch RequestType(rawValue: request.type) {
        case .read?:
            status = transfer(request, toGuest: true, memory: memory)
            if status == .ok { written = request.dataLength }
        case .write?:
            status = readOnly ? .ioError : transfer(request, toGuest: false, memory: memory)
        case .flush?:
            status = fsync(fd) == 0 ? .ok : .ioError
        case .getID?:
            let id = Array(serial.utf8.prefix(20))
            let bytes = Array((id + [UInt8](repeating: 0, count: 20)).prefix(min(20, Int(request.dataLength))))
            status = request.writeData(bytes, memory: memory) ? .ok : .ioError
            if status == .ok { written = UInt32(bytes.count) }
        case nil:
            status = .unsupported
        }
        try memory.store(status.rawValue, at: request.statusAddress)
        return written + 1
    }

    /// Moves the request's data between the image and guest memory, after checking the sector
    /// range against the capacity (an out-of-range request touches nothing).
    private func transfer(_ request: VirtioBlockRequest, toGuest: Bool, memory: any VirtioMemory) -> Status {
        let length = UInt64(request.dataLength)
        guard length % Self.sectorSize == 0, request.sector <= capacity,
              length / Self.sectorSize <= capacity - request.sector else { return .ioError }
        var offset = request.sector * Self.sectorSize
        for segment in request.data {
            var done: UInt64 = 0
            while done < UInt64(segment.length) {
                let count = Int(min(UInt64(segment.length) - done, 1 << 20))
                let address = segment.address + done
                if toGuest {
                    var bytes = [UInt8](repeating: 0, count: count)
                    guard Self.full(count, { n in bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + (count - n), n, off_t(offset) + off_t(count - n)) } }),
                          (try? memory.write(bytes, at: address)) != nil else { return .ioError }
                } else {
                    guard let bytes = try? memory.read(at: address, count: count),
                          Self.full(count, { n in bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + (count - n), n, off_t(offset) + off_t(count - n)) } })
                    else { return .ioError }
                }
                done += UInt64(count)
                offset += UInt64(count)
            }
        }
        return .ok
    }

    /// Repeats `io(remaining)` until `count` bytes moved; false on error or end of file.
    private static func full(_ count: Int, _ io: (Int) -> Int) -> Bool {
        var remaining = count
        while remaining > 0 {
            let n = io(remaining)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            remaining -= n
        }
        return true
    }
}
