#if canImport(FoundationEssentials)
import BinaryCoding
import FoundationEssentials
#else
import Foundation
#endif
import GuestMemory

/// The layout of a snapshot file, little-endian. One file: it is written and replaced atomically
/// with one rename, copied or deleted as one thing, and its RAM is mapped straight from it.
///
///     header (64 bytes): magic "LVSNAPF\0", format version u32, reserved u32,
///                        metadata length u64, metadata CRC-32 u32, reserved u32,
///                        RAM offset u64 (page-aligned), RAM length u64,
///                        header CRC-32 u32 (of bytes 0..<48), 12 reserved bytes (0)
///     metadata (at 64): sections { tag u32, length u32, bytes }
///         1 identity: kernel digest (u32 length + bytes), initramfs digest (same), monitor format version u32
///         2 machine: vCPU count u32, time dilation (IEEE double bits) u64, region count u32,
///                    regions { start u64, size u64 }
///         3 KVM state (`KVMStateFormat` bytes)   4 devices (JSON of `SnapshotDevices`)
///         5 monitor state (opaque; optional)
///     RAM (at the RAM offset): the regions one after the other, all-zero pages left as holes;
///         the file ends exactly at RAM offset + RAM length.
///
/// The RAM is not checksummed (hashing it would cost the restore its speed; the guest's RAM is
/// untrusted anyway); everything else is, and the padding between metadata and RAM must be zero.
public enum SnapshotFileFormat {
    public static let magic: [UInt8] = Array("LVSNAPF".utf8) + [0]
    public static let version: UInt32 = 1
    static let headerSize = 64
    static let pageSize: UInt64 = 4096
    /// Bounds on what a reader allocates from lengths in the file.
    static let maxMetadataBytes: UInt64 = 1 << 30
    static let maxKVMStateBytes = 256 << 20
    static let maxDeviceStateBytes = 16 << 20
    static let maxMonitorStateBytes = 512 << 20
    static let maxVCPUs: UInt32 = 4096

    enum Tag: UInt32, CaseIterable { case identity = 1, machine, kvmState, devices, monitorState }

    struct Header: Equatable {
        var version: UInt32
        var metadataLength: UInt64
        var metadataCRC: UInt32
        var ramOffset: UInt64
        var ramLength: UInt64
    }

    static func encodeHeader(_ h: Header) -> [UInt8] {
        var out = LittleEndianWriter()
        out.raw(magic)
        out.u32(h.version)
        out.u32(0)
        out.u64(h.metadataLength)
        out.u32(h.metadataCRC)
        out.u32(0)
        out.u64(h.ramOffset)
        out.u64(h.ramLength)
        out.u32(CRC32.checksum(out.bytes))
        out.raw([UInt8](repeating: 0, count: headerSize - out.bytes.count))
        return out.bytes
    }

    /// Checks magic, then version (a later version may change everything after it), then the header's CRC.
    static func decodeHeader(_ bytes: [UInt8], path: String) throws(SnapshotFileError) -> Header {
        var c = LittleEndianReader(bytes)
        guard bytes.count == headerSize, c.take(magic.count) == magic else { throw .notASnapshot(path: path) }
        guard let v = c.u32() else { throw .notASnapshot(path: path) }
        guard v == version else { throw .unsupportedVersion(file: v, supported: version) }
        let stored = bytes[48..<52].reversed().reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        guard CRC32.checksum(bytes[0..<48]) == stored else { throw .corrupt(path: path, reason: "header checksum mismatch") }
        guard bytes[52...].allSatisfy({ $0 == 0 }) else { throw .corrupt(path: path, reason: "reserved header bytes are not zero") }
        guard c.u32() != nil, let length = c.u64(), let crc = c.u32(), c.u32() != nil, let ramOffset = c.u64(),
              let ramLength = c.u64() else { throw .notASnapshot(path: path) }
        return Header(version: v, metadataLength: length, metadataCRC: crc, ramOffset: ramOffset, ramLength: ramLength)
    }

    static func encodeMetadata(_ s: SnapshotContents) throws(SnapshotFileError) -> [UInt8] {
        var identity = LittleEndianWriter()
        identity.counted(s.identity.kernel)
        identity.counted(s.identity.initramfs)
        identity.u32(s.identity.monitorFormatVersion)
        var machine = LittleEndianWriter()
        machine.u32(s.vcpuCount)
        machine.u64(s.timeDilation.bitPattern)
        machine.u32(UInt32(truncatingIfNeeded: s.memoryLayout.count))
        for e in s.memoryLayout {
            machine.u64(e.start)
            machine.u64(e.size)
        }
        let devices: [UInt8]
        do { devices = [UInt8](try JSONEncoder().encode(s.devices)) } catch {
            throw .invalidContents("device state does not encode: \(error)")
        }
        var out = LittleEndianWriter()
        out.section(Tag.identity.rawValue, identity.bytes)
        out.section(Tag.machine.rawValue, machine.bytes)
        out.section(Tag.kvmState.rawValue, s.kvmState)
        out.section(Tag.devices.rawValue, devices)
        if !s.monitorState.isEmpty { out.section(Tag.monitorState.rawValue, s.monitorState) }
        return out.bytes
    }

    static func decodeMetadata(_ bytes: [UInt8], path: String) throws(SnapshotFileError) -> SnapshotContents {
        func bad(_ reason: String) -> SnapshotFileError { .corrupt(path: path, reason: reason) }
        var c = LittleEndianReader(bytes)
        var sections: [Tag: [UInt8]] = [:]
        while !c.atEnd {
            guard let tag = c.u32(), let length = c.u32() else { throw bad("metadata ends inside a section header") }
            guard let known = Tag(rawValue: tag) else { throw bad("unknown section \(tag)") }
            guard sections[known] == nil else { throw bad("section \(tag) appears twice") }
            guard let body = c.take(Int(length)) else { throw bad("section \(tag) is truncated") }
            sections[known] = body
        }
        guard let identityBytes = sections[.identity], let machineBytes = sections[.machine],
              let kvmState = sections[.kvmState], let deviceBytes = sections[.devices] else {
            throw bad("a required section (identity, machine, KVM state, devices) is missing")
        }
        guard kvmState.count <= maxKVMStateBytes, deviceBytes.count <= maxDeviceStateBytes,
              (sections[.monitorState]?.count ?? 0) <= maxMonitorStateBytes else { throw bad("a section is larger than accepted") }

        var id = LittleEndianReader(identityBytes)
        guard let kernel = id.counted(limit: SnapshotIdentity.maxDigestBytes),
              let initramfs = id.counted(limit: SnapshotIdentity.maxDigestBytes),
              let monitorVersion = id.u32(), id.atEnd else { throw bad("identity section is malformed") }

        var m = LittleEndianReader(machineBytes)
        guard let vcpus = m.u32(), let dilationBits = m.u64(), let regionCount = m.u32() else { throw bad("machine section is truncated") }
        guard vcpus >= 1, vcpus <= maxVCPUs else { throw bad("\(vcpus) vCPUs (1...\(maxVCPUs) accepted)") }
        let dilation = Double(bitPattern: dilationBits)
        guard dilation.isFinite, dilation > 0 else { throw bad("time dilation \(dilation) is not a positive number") }
        guard regionCount <= UInt32(GuestRAMExtent.maxRegions) else { throw bad("\(regionCount) memory regions") }
        var layout: [GuestRAMExtent] = []
        for _ in 0..<regionCount {
            guard let start = m.u64(), let size = m.u64() else { throw bad("machine section is truncated") }
            layout.append(GuestRAMExtent(start: start, size: size))
        }
        guard m.atEnd else { throw bad("machine section has trailing bytes") }
        do throws(GuestMemoryFileError) { _ = try GuestRAMExtent.validate(layout) } catch { throw .memory(error) }

        let devices: SnapshotDevices
        do { devices = try JSONDecoder().decode(SnapshotDevices.self, from: Data(deviceBytes)) } catch {
            throw bad("device state does not decode: \(error)")
        }
        return SnapshotContents(identity: SnapshotIdentity(kernel: kernel, initramfs: initramfs, monitorFormatVersion: monitorVersion),
                                vcpuCount: vcpus, memoryLayout: layout, timeDilation: dilation, kvmState: kvmState,
                                devices: devices, monitorState: sections[.monitorState] ?? [])
    }
}
