#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Glibc
import Testing
import Devices
import GuestMemory
@testable import SnapshotFile

/// The snapshot file: round trip, refusal of foreign files, and truncated or corrupt files failing
/// with typed errors.
@Suite struct SnapshotFileTests {
    static let identity = SnapshotIdentity(kernel: ImageDigest.sha256(Array("kernel".utf8)), initramfs: ImageDigest.sha256(Array("initrd".utf8)),
                                           monitorFormatVersion: 3)

    /// A directory of its own, removed with everything in it.
    private final class Directory {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lv-snap-\(UUID().uuidString)").path
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        var entries: [String] { (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] }
        func file(_ name: String) -> String { path + "/" + name }
    }

    /// Device states taken from real devices in a non-default state.
    private func devices() throws -> SnapshotDevices {
        let uart = Serial16550(output: { _ in }, setIRQ: { _ in })
        uart.write(offset: 7, size: 1, value: 0x42)
        uart.receive([1, 2, 3])
        let cmos = CMOSClock()
        cmos.write(offset: 0, size: 1, value: 0x30)
        cmos.write(offset: 1, size: 1, value: 0x99)
        let keyboard = I8042Controller(onReset: {})
        keyboard.write(offset: 4, size: 1, value: 0xAA)
        let pm = ACPIPowerManagement()
        pm.write(offset: 2, size: 2, value: 0x20)
        let queue = VirtqueueState(size: 8, ready: true, descriptorTable: 0x10000, driverRing: 0x11000, deviceRing: 0x12000,
                                   lastAvailIndex: 65535, usedIndex: 65535)
        let virtio = VirtioMMIOState(deviceFeaturesSelect: 1, driverFeaturesSelect: 1, driverFeatures: 1 << 32, queueSelect: 0,
                                     queues: [queue], interruptStatus: 1, status: 15)
        return SnapshotDevices(serial: uart.snapshot(), cmos: cmos.snapshot(), keyboardController: keyboard.snapshot(),
                               powerManagement: pm.snapshot(), virtio: [virtio])
    }

    private func memory(size: UInt64 = 2 << 20) throws -> GuestMemory {
        let memory = try GuestMemory(size: size)
        try memory.write(Array("snapshot RAM".utf8), at: GuestPhysicalAddress(0x7000))
        try memory.store(UInt32(0xDEAD_BEEF), at: GuestPhysicalAddress(size - 4))
        return memory
    }

    private func contents(_ memory: GuestMemory, monitorState: [UInt8] = []) throws -> SnapshotContents {
        SnapshotContents(identity: Self.identity, vcpuCount: 2, memoryLayout: memory.layout, timeDilation: 0.25,
                         kvmState: Array("LVKVMST\0 opaque KVM state bytes".utf8), devices: try devices(), monitorState: monitorState)
    }

    /// Writes a snapshot and returns its path.
    private func written(in directory: Directory, monitorState: [UInt8] = []) throws -> String {
        let path = directory.file("guest.snapshot")
        let memory = try memory()
        try SnapshotWriter.write(try contents(memory, monitorState: monitorState), memory: memory, to: path)
        return path
    }

    private func fileBytes(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }
    private func replace(_ path: String, with bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    @Test func roundTrip() throws {
        let directory = try Directory()
        let path = directory.file("guest.snapshot")
        let memory = try memory()
        let saved = try contents(memory, monitorState: [9, 8, 7])
        #expect(try SnapshotWriter.write(saved, memory: memory, to: path) == 2)
        #expect(directory.entries == ["guest.snapshot"])  // no temporary file left
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)  // the guest's RAM is for its owner only

        let restored = try SnapshotReader.read(path, expecting: Self.identity)
        #expect(restored.contents == saved)
        #expect(restored.memory.layout == memory.layout)
        #expect(try restored.memory.read(at: GuestPhysicalAddress(0), count: 2 << 20) == memory.read(at: GuestPhysicalAddress(0), count: 2 << 20))
        #expect(try SnapshotReader.contents(of: path) == saved)

        // The restored devices take the saved states.
        let uart = Serial16550(output: { _ in }, setIRQ: { _ in })
        try uart.restore(restored.contents.devices.serial)
        #expect(uart.read(offset: 7, size: 1) == 0x42)
        #expect(uart.read(offset: 0, size: 1) == 1)
    }

    @Test func writingReplacesAnOldSnapshotWhole() throws {
        let directory = try Directory()
        let path = try written(in: directory)
        let bigger = try GuestMemory(size: 4 << 20)
        try bigger.write([0x55], at: GuestPhysicalAddress(0x30_0000))
        var second = try contents(bigger)
        second.vcpuCount = 1
        try SnapshotWriter.write(second, memory: bigger, to: path)
        let restored = try SnapshotReader.read(path, expecting: Self.identity)
        #expect(restored.contents.vcpuCount == 1)
        #expect(try restored.memory.load(UInt8.self, at: GuestPhysicalAddress(0x30_0000)) == 0x55)
        #expect(directory.entries == ["guest.snapshot"])
    }

    @Test func aFailedWriteLeavesNothingBehind() throws {
        let directory = try Directory()
        let memory = try memory()
        let error = #expect(throws: SnapshotFileError.self) {
            try SnapshotWriter.write(try contents(memory), memory: memory, to: directory.file("missing/guest.snapshot"))
        }
        guard case .io(_, "create", ENOENT)? = error else { Issue.record("\(String(describing: error))"); return }
        var other = try contents(memory)
        other.memoryLayout = [GuestRAMExtent(start: 0, size: 4096)]
        #expect(throws: SnapshotFileError.invalidContents("the memory layout given differs from the guest's RAM")) {
            try SnapshotWriter.write(other, memory: memory, to: directory.file("x"))
        }
        other = try contents(memory)
        other.vcpuCount = 0
        let refused = #expect(throws: SnapshotFileError.self) { try SnapshotWriter.write(other, memory: memory, to: directory.file("x")) }
        guard case .invalidContents? = refused else { Issue.record("\(String(describing: refused))"); return }
        other = try contents(memory)
        other.identity.kernel = [UInt8](repeating: 7, count: 65)
        #expect(throws: SnapshotFileError.self) { try SnapshotWriter.write(other, memory: memory, to: directory.file("x")) }
        #expect(directory.entries.isEmpty)
    }

    @Test func aSnapshotForAnotherKernelInitramfsOrMonitorIsRefused() throws {
        let directory = try Directory()
        let path = try written(in: directory)
        let hex = SnapshotIdentity.hex
        var other = Self.identity
        other.kernel = ImageDigest.sha256(Array("another kernel".utf8))
        #expect(throws: SnapshotFileError.mismatch(field: "kernel", snapshot: hex(Self.identity.kernel), expected: hex(other.kernel))) {
            _ = try SnapshotReader.read(path, expecting: other)
        }
        other = Self.identity
        other.initramfs = []
        #expect(throws: SnapshotFileError.mismatch(field: "initramfs", snapshot: hex(Self.identity.initramfs), expected: "(none)")) {
            _ = try SnapshotReader.read(path, expecting: other)
        }
        other = Self.identity
        other.monitorFormatVersion = 4
        let error = #expect(throws: SnapshotFileError.self) { _ = try SnapshotReader.read(path, expecting: other) }
        #expect(error == .mismatch(field: "monitor format version", snapshot: "3", expected: "4"))
        #expect(error?.description == "snapshot was made for another monitor format version: the snapshot has 3, this run has 4")
    }

    @Test func anotherFormatVersionIsRefusedByNumber() throws {
        let directory = try Directory()
        let path = try written(in: directory)
        var bytes = fileBytes(path)
        bytes[8] = 2
        try replace(path, with: bytes)
        #expect(throws: SnapshotFileError.unsupportedVersion(file: 2, supported: 1)) {
            _ = try SnapshotReader.read(path, expecting: Self.identity)
        }
    }

    @Test func foreignFilesAreNotSnapshots() throws {
        let directory = try Directory()
        let path = directory.file("not")
        try replace(path, with: Array("#!/bin/sh\necho this is a script, long enough to hold a header if it were one\n".utf8))
        #expect(throws: SnapshotFileError.notASnapshot(path: path)) { _ = try SnapshotReader.read(path, expecting: Self.identity) }
        try replace(path, with: [])
        #expect(throws: SnapshotFileError.notASnapshot(path: path)) { _ = try SnapshotReader.read(path, expecting: Self.identity) }
        #expect(throws: SnapshotFileError.notASnapshot(path: directory.path)) {
            _ = try SnapshotReader.read(directory.path, expecting: Self.identity)
        }
        let error = #expect(throws: SnapshotFileError.self) { _ = try SnapshotReader.read(directory.file("absent"), expecting: Self.identity) }
        guard case .io(_, "open", ENOENT)? = error else { Issue.record("\(String(describing: error))"); return }
    }

    @Test func everyTruncationIsATypedError() throws {
        let directory = try Directory()
        let path = try written(in: directory)
        let size = fileBytes(path).count
        let fd = open(path, O_RDWR | O_CLOEXEC)
        defer { close(fd) }
        var cuts = Array(stride(from: 1, to: 8192, by: 7)) + [size - 4096, size - 1]
        cuts.removeAll { $0 >= size }
        for cut in cuts.reversed() {
            #expect(ftruncate(fd, off_t(cut)) == 0)
            let error = #expect(throws: SnapshotFileError.self) { _ = try SnapshotReader.read(path, expecting: Self.identity) }
            guard case .truncated? = error else { Issue.record("cut at \(cut): \(String(describing: error))"); continue }
        }
    }

    @Test func everyChangedByteBeforeTheRAMIsATypedError() throws {
        let directory = try Directory()
        let path = try written(in: directory, monitorState: [1, 2, 3, 4])
        let original = fileBytes(path)
        let ramOffset = Int(original[32..<40].reversed().reduce(UInt64(0)) { ($0 << 8) | UInt64($1) })
        #expect(ramOffset == 4096)
        let fd = open(path, O_RDWR | O_CLOEXEC)
        defer { close(fd) }
        for position in 0..<ramOffset {
            var byte = original[position] ^ 0x41
            #expect(pwrite(fd, &byte, 1, off_t(position)) == 1)
            #expect(throws: SnapshotFileError.self, "byte \(position)") { _ = try SnapshotReader.read(path, expecting: Self.identity) }
            byte = original[position]
            #expect(pwrite(fd, &byte, 1, off_t(position)) == 1)
        }
        #expect(pwrite(fd, "x", 1, off_t(original.count)) == 1)  // a byte after the RAM
        #expect(throws: SnapshotFileError.self) { _ = try SnapshotReader.read(path, expecting: Self.identity) }
    }

    /// Metadata damaged behind a valid checksum (what a writer bug or a crafted file gives): the
    /// section parser and the JSON decoder fail with typed errors, never a trap.
    @Test func damagedMetadataFailsCleanly() throws {
        let memory = try memory()
        let good = try SnapshotFileFormat.encodeMetadata(try contents(memory, monitorState: [5]))
        #expect(try SnapshotFileFormat.decodeMetadata(good, path: "m") == contents(memory, monitorState: [5]))
        var random = DeterministicRandom(seed: 13)
        var failures = 0
        for round in 0..<2000 {
            var bytes = good
            switch round % 3 {
            case 0: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
            case 1:
                for _ in 0...(random.next() % 4) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            default:
                let at = Int(random.next() % UInt64(bytes.count - 4))
                let value = UInt32(truncatingIfNeeded: random.next())
                for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
            }
            do { _ = try SnapshotFileFormat.decodeMetadata(bytes, path: "m") } catch { failures += 1 }
        }
        #expect(failures > 1000)
    }

    @Test func metadataLimitsHold() throws {
        let memory = try memory()
        var c = try contents(memory)
        for bad in [Double.nan, 0, -1, .infinity] {
            c.timeDilation = bad
            #expect(throws: SnapshotFileError.self) {
                _ = try SnapshotFileFormat.decodeMetadata(try SnapshotFileFormat.encodeMetadata(c), path: "m")
            }
        }
        c = try contents(memory)
        c.vcpuCount = 0
        #expect(throws: SnapshotFileError.self) { _ = try SnapshotFileFormat.decodeMetadata(try SnapshotFileFormat.encodeMetadata(c), path: "m") }
        c = try contents(memory)
        c.identity.kernel = [UInt8](repeating: 1, count: 65)
        #expect(throws: SnapshotFileError.self) { _ = try SnapshotFileFormat.decodeMetadata(try SnapshotFileFormat.encodeMetadata(c), path: "m") }
        c = try contents(memory)
        c.memoryLayout = [GuestRAMExtent(start: 0, size: 4096), GuestRAMExtent(start: 0, size: 4096)]
        #expect(throws: SnapshotFileError.self) { _ = try SnapshotFileFormat.decodeMetadata(try SnapshotFileFormat.encodeMetadata(c), path: "m") }
    }

    @Test func sha256MatchesTheStandardVectors() throws {
        func hex(_ b: [UInt8]) -> String { SnapshotIdentity.hex(b) }
        #expect(hex(ImageDigest.sha256([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(ImageDigest.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(ImageDigest.sha256(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(hex(ImageDigest.sha256(million)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // A file of three and a bit 1 MiB reads is hashed piece by piece to the same digest.
        let directory = try Directory()
        let large = (0..<3_500_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        try Data(large).write(to: URL(fileURLWithPath: directory.file("a")))
        #expect(try ImageDigest.sha256(ofFileAt: directory.file("a")) == ImageDigest.sha256(large))
        try Data(million).write(to: URL(fileURLWithPath: directory.file("b")))
        #expect(try ImageDigest.sha256(ofFileAt: directory.file("b")) == ImageDigest.sha256(million))
    }
}
