/// An in-memory "newc" (SVR4, magic `070701`) cpio archive, the format Linux
/// unpacks as an initramfs.
///
/// Paths are stored relative (`usr/bin/tool`); leading slashes, `.` components
/// and repeated slashes are dropped. Missing parent directories are added once,
/// with mode 0755, before the entry that needs them. Adding a path again
/// replaces the earlier file or symlink (directories are kept). All entries are
/// owned by root, have mtime 0 and unique inode numbers, so the output is
/// deterministic. The kernel accepts such an archive appended, uncompressed,
/// after a compressed initramfs that is padded to a multiple of 4 bytes.
public struct CPIOArchive: Sendable, Equatable {
    /// One archive member.
    struct Entry: Sendable, Equatable {
        enum Kind: Sendable, Equatable {
            case directory
            case file([UInt8])
            case symlink(String)
        }
        var path: String
        var kind: Kind
        var permissions: UInt32
    }

    private(set) var entries: [Entry] = []
    private var indexByPath: [String: Int] = [:]

    /// Creates an empty archive.
    public init() {}

    /// Whether the archive already has an entry at `path`.
    public func contains(_ path: String) -> Bool {
        indexByPath[Self.normalize(path)] != nil
    }

    /// The archive paths, in archive order.
    public var paths: [String] { entries.map(\.path) }

    /// Adds a directory (and its missing parents). Does nothing if it exists.
    public mutating func addDirectory(_ path: String, mode: UInt32 = 0o755) {
        let path = Self.normalize(path)
        guard !path.isEmpty, indexByPath[path] == nil else { return }
        addParents(of: path)
        append(Entry(path: path, kind: .directory, permissions: mode & 0o7777))
    }

    /// Adds a regular file with the given permission bits (e.g. `0o755`).
    public mutating func addFile(_ path: String, contents: [UInt8], mode: UInt32) {
        add(Entry(path: Self.normalize(path), kind: .file(contents), permissions: mode & 0o7777))
    }

    /// Adds a symbolic link pointing at `target` (stored verbatim).
    public mutating func addSymlink(_ path: String, target: String) {
        add(Entry(path: Self.normalize(path), kind: .symlink(target), permissions: 0o777))
    }

    /// The encoded archive, including the `TRAILER!!!` entry; its length is a
    /// multiple of 4.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.reduce(512) { $0 + 128 + $1.path.utf8.count + $1.dataSize })
        for (index, entry) in entries.enumerated() {
            let data: [UInt8]
            let type: UInt32
            switch entry.kind {
            case .directory: (data, type) = ([], 0o040000)
            case .file(let bytes): (data, type) = (bytes, 0o100000)
            case .symlink(let target): (data, type) = (Array(target.utf8), 0o120000)
            }
            Self.appendMember(
                to: &out, name: entry.path, inode: UInt32(index + 1),
                mode: type | entry.permissions,
                links: entry.kind == .directory ? 2 : 1, data: data)
        }
        Self.appendMember(to: &out, name: "TRAILER!!!", inode: 0, mode: 0, links: 1, data: [])
        return out
    }

    // MARK: - Private

    private mutating func add(_ entry: Entry) {
        guard !entry.path.isEmpty else { return }
        if let index = indexByPath[entry.path] {
            if entries[index].kind != .directory { entries[index] = entry }
            return
        }
        addParents(of: entry.path)
        append(entry)
    }

    private mutating func addParents(of path: String) {
        var parent = ""
        for component in path.split(separator: "/").dropLast() {
            parent += parent.isEmpty ? String(component) : "/" + component
            if indexByPath[parent] == nil {
                append(Entry(path: parent, kind: .directory, permissions: 0o755))
            }
        }
    }

    private mutating func append(_ entry: Entry) {
        indexByPath[entry.path] = entries.count
        entries.append(entry)
    }

    static func normalize(_ path: String) -> String {
        path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }

    private static func appendMember(
        to out: inout [UInt8], name: String, inode: UInt32, mode: UInt32, links: UInt32,
        data: [UInt8]
    ) {
        let nameBytes = Array(name.utf8) + [0]
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields: [UInt32] = [
            inode, mode, 0, 0, links, 0, UInt32(data.count), 0, 0, 0, 0, UInt32(nameBytes.count), 0,
        ]
        out += Array("070701".utf8)
        for field in fields { out += hex8(field) }
        out += nameBytes
        pad(&out)
        out += data
        pad(&out)
    }

    private static func hex8(_ value: UInt32) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return (0..<8).reversed().map { digits[Int((value >> (UInt32($0) * 4)) & 0xF)] }
    }

    private static func pad(_ out: inout [UInt8]) {
        while out.count % 4 != 0 { out.append(0) }
    }
}

extension CPIOArchive.Entry {
    var dataSize: Int {
        switch kind {
        case .directory: 0
        case .file(let bytes): bytes.count
        case .symlink(let target): target.utf8.count
        }
    }
}
