import AllocationLedger
import AllocationTracing
import Foundation
import Introspection
import LeakAnalysis
import Testing

/// The kallsyms decoder against the real Debian kernel of the default guest image.
@Suite struct KallsymsTests {
    static let table: Result<Kallsyms, any Error> = Result {
        let (image, base) = try TestKernelImage.loadedSegments()
        return try Kallsyms.locate(in: image, base: base)
    }

    @Test func decodesTheWholeTable() throws {
        let table = try Self.table.get()
        #expect(table.entries.count > 50_000)
        #expect(table.relativeBase == 0xFFFF_FFFF_8100_0000)
        let byName = Dictionary(table.entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(byName["_text"]?.address == 0xFFFF_FFFF_8100_0000)
        #expect(byName["entry_SYSCALL_64"]?.type == "T")
        #expect(byName["init_task"]?.type == "D")
        #expect(byName["kmem_cache_alloc"]?.type == "T")
        #expect(byName["__kmalloc"]?.type == "T")
        // Per-CPU symbols are absolute offsets into the per-CPU area.
        #expect(byName["fixed_percpu_data"]?.address == 0)
        let text = table.entries.filter { $0.type == "T" || $0.type == "t" }
        #expect(text.allSatisfy { $0.address >= 0xFFFF_FFFF_8100_0000 })
    }

    @Test func corruptedTokenIndexIsRejected() throws {
        var (image, base) = try TestKernelImage.loadedSegments()
        let anchor = Array("0\u{0}1\u{0}2\u{0}3\u{0}4\u{0}5\u{0}6\u{0}7\u{0}8\u{0}9\u{0}".utf8)
        // Break every copy of the digit-token run: no token table can be found.
        var i = 0
        while i + anchor.count <= image.count {
            if image[i] == 0x30, Array(image[i..<i + anchor.count]) == anchor { image[i] = 0x41 }
            i += 1
        }
        #expect(throws: KallsymsError.tokenTableNotFound) { try Kallsyms.locate(in: image, base: base) }
    }

    @Test func truncatedImageIsATypedError() throws {
        let (image, base) = try TestKernelImage.loadedSegments()
        let table = try Self.table.get()
        _ = table
        // Keep only the second half: the token table may survive, the symbol table does not.
        let cut = Array(image[(image.count / 2)...])
        #expect(throws: KallsymsError.self) { try Kallsyms.locate(in: cut, base: base + UInt64(image.count / 2)) }
        #expect(throws: KallsymsError.tokenTableNotFound) { try Kallsyms.locate(in: [UInt8](repeating: 0, count: 4096), base: base) }
    }
}

/// The default guest image's vmlinux (built by scripts/setup.sh).
enum TestKernelImage {
    static var path: String {
        if let env = ProcessInfo.processInfo.environment["LEAKVISOR_VMLINUX"] { return env }
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { break }
        }
        return url.appendingPathComponent("guest-images/build/default/vmlinux").path
    }

    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing: run scripts/setup.sh to build the guest image" }
    }

    /// The vmlinux as the kallsyms decoder sees it (its loaded segments at their addresses).
    static func loadedSegments() throws -> ([UInt8], UInt64) {
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(path: path) }
        let loaded = try GuestKernel.loadedImage(vmlinux: path)
        return (loaded.image, loaded.base)
    }
}
