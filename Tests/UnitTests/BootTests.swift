import Foundation
import Testing

@testable import Boot
import GuestMemory

// MARK: - helpers

/// Little-endian writer for building kernel images byte by byte.
private extension Array where Element == UInt8 {
    mutating func set<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    func get<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(self[offset + i]) << (8 * i) }
        return v
    }
}

/// Just the case name of a BootError, so tests can check the kind without pinning the message.
private extension BootError {
    var kind: String {
        switch self {
        case .unrecognizedKernel: return "unrecognizedKernel"
        case .corruptKernel: return "corruptKernel"
        case .kernelDoesNotFit: return "kernelDoesNotFit"
        case .initrdTooLarge: return "initrdTooLarge"
        case .commandLineTooLong: return "commandLineTooLong"
        case .commandLineInvalid: return "commandLineInvalid"
        case .memory: return "memory"
        }
    }
}

private func loadError(_ bytes: [UInt8], into memory: GuestMemory) -> BootError? {
    do {
        _ = try KernelImage.load(bytes, into: memory)
        return nil
    } catch {
        return error
    }
}

/// One program header of a crafted ELF.
private struct Segment {
    var type: UInt32 = 1  // PT_LOAD
    var vaddr: UInt64
    var paddr: UInt64
    var data: [UInt8]
    var memsz: UInt64
    /// Overrides the file offset the program header claims (default: where the data really is).
    var offsetOverride: UInt64? = nil
    /// Overrides p_filesz (default: data.count).
    var fileSizeOverride: UInt64? = nil
}

/// A minimal ELF64 file: header, program headers at 64, segment data from 0x1000 (page aligned).
private func makeELF(entry: UInt64, segments: [Segment], elfClass: UInt8 = 2, dataEncoding: UInt8 = 1,
                     machine: UInt16 = 62) -> [UInt8] {
    var offsets: [Int] = []
    var cursor = 0x1000
    for s in segments {
        offsets.append(cursor)
        cursor += (s.data.count + 0xFFF) & ~0xFFF
    }
    var b = [UInt8](repeating: 0, count: max(cursor, 64 + 56 * segments.count))
    b.replaceSubrange(0..<4, with: [0x7F, 0x45, 0x4C, 0x46])
    b[4] = elfClass; b[5] = dataEncoding; b[6] = 1
    b.set(UInt16(2), at: 16)            // ET_EXEC
    b.set(machine, at: 18)
    b.set(UInt32(1), at: 20)
    b.set(entry, at: 24)
    b.set(UInt64(64), at: 32)           // e_phoff
    b.set(UInt16(64), at: 52)           // e_ehsize
    b.set(UInt16(56), at: 54)           // e_phentsize
    b.set(UInt16(segments.count), at: 56)
    for (i, s) in segments.enumerated() {
        let ph = 64 + 56 * i
        b.set(s.type, at: ph)
        b.set(UInt32(7), at: ph + 4)
        b.set(s.offsetOverride ?? UInt64(offsets[i]), at: ph + 8)
        b.set(s.vaddr, at: ph + 16)
        b.set(s.paddr, at: ph + 24)
        b.set(s.fileSizeOverride ?? UInt64(s.data.count), at: ph + 32)
        b.set(s.memsz, at: ph + 40)
        b.set(UInt64(0x1000), at: ph + 48)
        b.replaceSubrange(offsets[i]..<offsets[i] + s.data.count, with: s.data)
    }
    return b
}

private let kernelVirtualBase: UInt64 = 0xFFFF_FFFF_8100_0000
private let pattern: [UInt8] = (0..<0x180).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }

private func simpleELF(paddr: UInt64 = 0x20_0000, memsz: UInt64 = 0x2000) -> [UInt8] {
    makeELF(entry: kernelVirtualBase + 0x10,
            segments: [Segment(vaddr: kernelVirtualBase, paddr: paddr, data: pattern, memsz: memsz)])
}

/// A bzImage-shaped buffer: setup sectors, then a protected-mode payload.
private func makeBzImage(setupSectors: UInt8 = 4, version: UInt16 = 0x020F, xloadflags: UInt16 = 0x3,
                         preferred: UInt64 = 0x100_0000, initSize: UInt32 = 0x2_0000,
                         payload: [UInt8] = (0..<0x1000).map { UInt8(truncatingIfNeeded: $0 ^ 0x5A) }) -> [UInt8] {
    let setup = (Int(setupSectors == 0 ? 4 : setupSectors) + 1) * 512
    var b = [UInt8](repeating: 0, count: setup)
    b[0x1F1] = setupSectors
    b.set(UInt16(0xAA55), at: 0x1FE)
    b[0x200] = 0xEB; b[0x201] = 0x6A                     // jmp: header ends at 0x26C
    b.set(UInt32(0x5372_6448), at: 0x202)                 // "HdrS"
    b.set(version, at: 0x206)
    b[0x211] = 0x01
    b.set(UInt32(0x7FFF_FFFF), at: 0x22C)                 // initrd_addr_max
    b.set(UInt32(0x20_0000), at: 0x230)                   // kernel_alignment
    b.set(xloadflags, at: 0x236)
    b.set(UInt32(2047), at: 0x238)                        // cmdline_size
    b.set(preferred, at: 0x258)
    b.set(initSize, at: 0x260)
    return b + payload
}

private let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let realVmlinux = repositoryRoot.appendingPathComponent("guest-images/build/default/vmlinux").path
private let realBzImage = repositoryRoot.appendingPathComponent("guest-images/build/default/bzImage").path

// MARK: - ELF vmlinux

@Suite struct ELFKernelTests {
    @Test func loadsSegmentAtPhysicalAddressAndZeroesBSS() throws {
        let memory = try GuestMemory(size: 4 << 20)
        // Dirty the whole segment range first so that zeroing is observable.
        try memory.fill(0xAA, at: GuestPhysicalAddress(0x20_0000), count: 0x3000)
        let kernel = try KernelImage.load(simpleELF(), into: memory)

        #expect(kernel.format == .elf)
        // e_entry is virtual and inside the segment: translated to p_paddr + (entry - p_vaddr).
        #expect(kernel.entry == GuestPhysicalAddress(0x20_0010))
        #expect(kernel.end == GuestPhysicalAddress(0x20_2000))
        #expect(kernel.setupHeader == nil)
        #expect(kernel.initrdAddressMax == 0x7FFF_FFFF)
        #expect(kernel.commandLineMaximum == 2047)
        #expect(try memory.read(at: GuestPhysicalAddress(0x20_0000), count: pattern.count) == pattern)
        let bss = try memory.read(at: GuestPhysicalAddress(0x20_0000 + UInt64(pattern.count)), count: 0x2000 - pattern.count)
        #expect(bss.allSatisfy { $0 == 0 })
        // Nothing past memsz is touched.
        #expect(try memory.read(at: GuestPhysicalAddress(0x20_2000), count: 16) == [UInt8](repeating: 0xAA, count: 16))
    }

    @Test func physicalEntryPointIsKeptWhenOutsideEverySegment() throws {
        // Like vmlinux: e_entry = LOAD_PHYSICAL_ADDR, segments have kernel-virtual p_vaddr.
        let memory = try GuestMemory(size: 4 << 20)
        let elf = makeELF(entry: 0x10_0000, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: UInt64(pattern.count)),
        ])
        let kernel = try KernelImage.load(elf, into: memory)
        #expect(kernel.entry == GuestPhysicalAddress(0x10_0000))
        #expect(try memory.load(UInt8.self, at: GuestPhysicalAddress(0x10_0000)) == pattern[0])
    }

    @Test func loadsEverySegmentAndSkipsNonLoadHeaders() throws {
        let memory = try GuestMemory(size: 8 << 20)
        let second: [UInt8] = [1, 2, 3, 4, 5]
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(type: 4, vaddr: 0, paddr: 0x30_0000, data: [0xEE, 0xEE], memsz: 2),  // PT_NOTE: ignored
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: UInt64(pattern.count)),
            Segment(vaddr: kernelVirtualBase + 0x40_0000, paddr: 0x50_0000, data: second, memsz: 0x1_0000),
        ])
        let kernel = try KernelImage.load(elf, into: memory)
        #expect(kernel.entry == GuestPhysicalAddress(0x10_0000))
        #expect(kernel.end == GuestPhysicalAddress(0x51_0000))
        #expect(try memory.read(at: GuestPhysicalAddress(0x50_0000), count: 5) == second)
        #expect(try memory.read(at: GuestPhysicalAddress(0x30_0000), count: 2) == [0, 0])
    }

    @Test func truncatedHeaderIsCorrupt() throws {
        let memory = try GuestMemory(size: 1 << 20)
        let error = loadError(Array(simpleELF().prefix(40)), into: memory)
        #expect(error == .corruptKernel("truncated ELF header"))
    }

    @Test func segmentBeyondTheFileIsCorrupt() throws {
        let memory = try GuestMemory(size: 4 << 20)
        // Claims 0x10000 bytes of file data where the file has only 0x1000.
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: 0x2_0000, fileSizeOverride: 0x1_0000),
        ])
        let error = loadError(elf, into: memory)
        #expect(error?.kind == "corruptKernel")
        #expect("\(error.map { "\($0)" } ?? "")".contains("outside the file"))

        // An offset past the end is rejected the same way.
        let farOffset = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: 0x1000, offsetOverride: 0xFFFF_0000),
        ])
        #expect(loadError(farOffset, into: memory)?.kind == "corruptKernel")
    }

    @Test func fileSizeLargerThanMemorySizeIsCorrupt() throws {
        let memory = try GuestMemory(size: 4 << 20)
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: 0x10),
        ])
        #expect(loadError(elf, into: memory)?.kind == "corruptKernel")
    }

    @Test func noLoadableSegmentIsCorrupt() throws {
        let memory = try GuestMemory(size: 4 << 20)
        let elf = makeELF(entry: 0x10_0000, segments: [
            Segment(type: 4, vaddr: 0, paddr: 0x10_0000, data: pattern, memsz: UInt64(pattern.count)),
        ])
        #expect(loadError(elf, into: memory) == .corruptKernel("no loadable segments"))
    }

    @Test func zeroOrHugeProgramHeaderCountIsCorrupt() throws {
        let memory = try GuestMemory(size: 4 << 20)
        var elf = simpleELF()
        elf.set(UInt16(0), at: 56)
        #expect(loadError(elf, into: memory) == .corruptKernel("bad program header table"))
        elf.set(UInt16(0xFFFF), at: 56)
        #expect(loadError(elf, into: memory) == .corruptKernel("bad program header table"))
        elf = simpleELF()
        elf.set(UInt64(elf.count + 8), at: 32)   // e_phoff past the end
        #expect(loadError(elf, into: memory) == .corruptKernel("bad program header table"))
    }

    @Test func wrongMachineIsUnrecognized() throws {
        let memory = try GuestMemory(size: 4 << 20)
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: 0x1000),
        ], machine: 183)  // AArch64
        #expect(loadError(elf, into: memory) == .unrecognizedKernel("ELF file is not for x86-64"))
    }

    @Test func thirtyTwoBitELFIsUnrecognized() throws {
        let memory = try GuestMemory(size: 4 << 20)
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: 0x1000),
        ], elfClass: 1)
        #expect(loadError(elf, into: memory) == .unrecognizedKernel("ELF file is not 64-bit"))
    }

    @Test func bigEndianELFIsUnrecognized() throws {
        let memory = try GuestMemory(size: 4 << 20)
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0x10_0000, data: pattern, memsz: 0x1000),
        ], dataEncoding: 2)
        #expect(loadError(elf, into: memory) == .unrecognizedKernel("ELF file is not little-endian"))
    }

    @Test func bareELFMagicIsUnrecognized() throws {
        let memory = try GuestMemory(size: 1 << 20)
        #expect(loadError([0x7F, 0x45, 0x4C, 0x46], into: memory)?.kind == "unrecognizedKernel")
    }

    @Test func emptyFileIsUnrecognized() throws {
        let memory = try GuestMemory(size: 1 << 20)
        #expect(loadError([], into: memory) == .unrecognizedKernel("the file is empty"))
    }

    @Test func randomBytesAreUnrecognized() throws {
        let memory = try GuestMemory(size: 1 << 20)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var bytes = (0..<8192).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        bytes[0] = 0x12         // not "\x7fELF"
        bytes[0x202] = 0x00     // not "HdrS"
        let error = loadError(bytes, into: memory)
        #expect(error?.kind == "unrecognizedKernel")
        #expect("\(error.map { "\($0)" } ?? "")".contains("HdrS"))
    }

    @Test func segmentBeyondGuestMemoryDoesNotFit() throws {
        let memory = try GuestMemory(size: 2 << 20)
        let error = loadError(simpleELF(paddr: 0x1F_0000, memsz: 0x2_0000), into: memory)
        #expect(error == .kernelDoesNotFit(needed: 0x21_0000, available: 0x20_0000))
    }

    @Test func segmentWrappingAroundTheAddressSpaceIsCorrupt() throws {
        let memory = try GuestMemory(size: 2 << 20)
        let elf = makeELF(entry: kernelVirtualBase, segments: [
            Segment(vaddr: kernelVirtualBase, paddr: 0xFFFF_FFFF_FFFF_F000, data: pattern, memsz: 0x2000),
        ])
        #expect(loadError(elf, into: memory) == .corruptKernel("segment 0 wraps around"))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: realVmlinux),
                   "guest-images/build/default/vmlinux not built (run scripts/setup.sh)"))
    func realVmlinuxLoadsAtSixteenMiB() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: realVmlinux)))
        let memory = try GuestMemory(size: 512 << 20)
        let kernel = try KernelImage.load(bytes, into: memory)
        #expect(kernel.format == .elf)
        #expect(kernel.entry == GuestPhysicalAddress(0x100_0000))
        #expect(kernel.end > GuestPhysicalAddress(0x200_0000))
        #expect(kernel.end < memory.lowEnd)

        // The first PT_LOAD's file bytes are at its p_paddr.
        let phoff = Int(bytes.get(UInt64.self, at: 32))
        let phentsize = Int(bytes.get(UInt16.self, at: 54))
        let phnum = Int(bytes.get(UInt16.self, at: 56))
        let firstLoad = (0..<phnum).map { phoff + $0 * phentsize }.first { bytes.get(UInt32.self, at: $0) == 1 }
        let ph = try #require(firstLoad)
        let offset = Int(bytes.get(UInt64.self, at: ph + 8))
        let paddr = bytes.get(UInt64.self, at: ph + 24)
        #expect(paddr == 0x100_0000)
        #expect(try memory.read(at: GuestPhysicalAddress(paddr), count: 256) == Array(bytes[offset..<offset + 256]))
    }
}

// MARK: - bzImage

@Suite struct BzImageTests {
    @Test func loadsPayloadAtPreferredAddressAndEntersAtPlus0x200() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let image = makeBzImage()
        let kernel = try KernelImage.load(image, into: memory)
        #expect(kernel.format == .bzImage)
        #expect(kernel.entry == GuestPhysicalAddress(0x100_0200))
        // end covers init_size (0x20000), which exceeds the payload (0x1000).
        #expect(kernel.end == GuestPhysicalAddress(0x102_0000))
        #expect(kernel.initrdAddressMax == 0x7FFF_FFFF)
        #expect(kernel.commandLineMaximum == 2047)
        let kernelOffset = 5 * 512
        #expect(try memory.read(at: GuestPhysicalAddress(0x100_0000), count: 0x1000) == Array(image[kernelOffset...]))
        // Setup header copied from 0x1f1 up to the end given by the jump at 0x200 (0x202 + 0x6a).
        let header = try #require(kernel.setupHeader)
        #expect(header == Array(image[0x1F1..<0x26C]))
        #expect(header[0x202 - 0x1F1..<0x206 - 0x1F1] == [0x48, 0x64, 0x72, 0x53])  // "HdrS"
    }

    @Test func zeroSetupSectorsMeansFour() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let image = makeBzImage(setupSectors: 0)
        _ = try KernelImage.load(image, into: memory)
        #expect(try memory.read(at: GuestPhysicalAddress(0x100_0000), count: 16) == Array(image[2560..<2576]))
    }

    @Test func lowPreferredAddressFallsBackToSixteenMiB() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let kernel = try KernelImage.load(makeBzImage(preferred: 0x9_0000), into: memory)
        #expect(kernel.entry == GuestPhysicalAddress(0x100_0200))
    }

    @Test func payloadLargerThanInitSizeSetsEnd() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let kernel = try KernelImage.load(makeBzImage(preferred: 0x20_0000, initSize: 0x100), into: memory)
        #expect(kernel.entry == GuestPhysicalAddress(0x20_0200))
        #expect(kernel.end == GuestPhysicalAddress(0x20_1000))
    }

    @Test func oldBootProtocolIsUnrecognized() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let error = loadError(makeBzImage(version: 0x020B), into: memory)
        #expect(error?.kind == "unrecognizedKernel")
        #expect("\(error.map { "\($0)" } ?? "")".contains("2.12"))
    }

    @Test func missingKernel64FlagIsUnrecognized() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let error = loadError(makeBzImage(xloadflags: 0x2), into: memory)
        #expect(error == .unrecognizedKernel("bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)"))
    }

    @Test func setupSectorsPastTheFileAreCorrupt() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let image = Array(makeBzImage().prefix(5 * 512))   // no payload at all
        #expect(loadError(image, into: memory) == .corruptKernel("setup sectors run past the end of the file"))
    }

    @Test func truncatedSetupHeaderIsCorrupt() throws {
        let memory = try GuestMemory(size: 32 << 20)
        let image = Array(makeBzImage().prefix(0x240))    // "HdrS", version and xloadflags present, 0x258 missing
        #expect(loadError(image, into: memory) == .corruptKernel("truncated setup header"))
    }

    @Test func kernelLargerThanGuestMemoryDoesNotFit() throws {
        let memory = try GuestMemory(size: 16 << 20)     // ends exactly at the load address
        let error = loadError(makeBzImage(), into: memory)
        #expect(error == .kernelDoesNotFit(needed: 0x102_0000, available: 0x100_0000))
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: realBzImage),
                   "guest-images/build/default/bzImage not built (run scripts/setup.sh)"))
    func realBzImageLoads() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: realBzImage)))
        let memory = try GuestMemory(size: 512 << 20)
        let kernel = try KernelImage.load(bytes, into: memory)
        #expect(kernel.format == .bzImage)
        #expect(kernel.entry == GuestPhysicalAddress(0x100_0200))
        let initSize = UInt64(bytes.get(UInt32.self, at: 0x260))
        #expect(kernel.end.rawValue >= 0x100_0000 + initSize)
        let header = try #require(kernel.setupHeader)
        #expect(header.count > 0x264 - 0x1F1)
        let params = BootParams(kernel: kernel)
        #expect(params.bytes.get(UInt32.self, at: 0x202) == 0x5372_6448)
        #expect(params.bytes.get(UInt16.self, at: 0x206) >= 0x020C)
        #expect(params.bytes[0x236] & 1 == 1)
    }
}

// MARK: - boot_params

@Suite struct BootParamsTests {
    private let elfKernel = LoadedKernel(format: .elf, entry: GuestPhysicalAddress(0x100_0000),
                                         end: GuestPhysicalAddress(0x300_0000), setupHeader: nil,
                                         initrdAddressMax: 0x7FFF_FFFF, commandLineMaximum: 2047)

    @Test func synthesizedHeaderForELF() {
        let b = BootParams(kernel: elfKernel).bytes
        #expect(b.count == 4096)
        #expect(b.get(UInt16.self, at: 0x1FE) == 0xAA55)
        #expect(b.get(UInt32.self, at: 0x202) == 0x5372_6448)    // "HdrS"
        #expect(Array(b[0x202..<0x206]) == Array("HdrS".utf8))
        #expect(b.get(UInt16.self, at: 0x206) == 0x020F)
        #expect(b.get(UInt32.self, at: 0x22C) == 0x7FFF_FFFF)    // initrd_addr_max
        #expect(b.get(UInt32.self, at: 0x230) == 0x100_0000)     // kernel_alignment
        #expect(b.get(UInt32.self, at: 0x238) == 2047)           // cmdline_size
        #expect(b[0x210] == 0xFF)                                // type_of_loader
        #expect(b[0x211] == 0x81)                                // LOADED_HIGH | CAN_USE_HEAP
        #expect(b.get(UInt16.self, at: 0x224) == 0xFE00)         // heap_end_ptr
    }

    @Test func copiedHeaderForBzImageKeepsItsFieldsButSetsLoaderFields() throws {
        var header = [UInt8](repeating: 0, count: 0x26C - 0x1F1)
        header[0] = 27                                            // setup_sects
        header.set(UInt32(0x5372_6448), at: 0x202 - 0x1F1)
        header.set(UInt16(0x020D), at: 0x206 - 0x1F1)
        header[0x210 - 0x1F1] = 0x12                              // overwritten
        header[0x211 - 0x1F1] = 0x20                              // QUIET_FLAG stays
        let kernel = LoadedKernel(format: .bzImage, entry: GuestPhysicalAddress(0x100_0200),
                                  end: GuestPhysicalAddress(0x200_0000), setupHeader: header,
                                  initrdAddressMax: 0x3FFF_FFFF, commandLineMaximum: 255)
        let b = BootParams(kernel: kernel).bytes
        #expect(b[0x1F1] == 27)
        #expect(b.get(UInt32.self, at: 0x202) == 0x5372_6448)
        #expect(b.get(UInt16.self, at: 0x206) == 0x020D)
        #expect(b[0x210] == 0xFF)
        #expect(b[0x211] == 0xA1)
        #expect(b.get(UInt16.self, at: 0x224) == 0xFE00)
        #expect(b.get(UInt32.self, at: 0x230) == 0)              // not synthesized for bzImage
    }

    @Test func commandLinePointer() {
        var p = BootParams(kernel: elfKernel)
        p.setCommandLine(at: BootLayout.commandLine)
        #expect(p.bytes.get(UInt32.self, at: 0x228) == 0x2_0000)
        #expect(p.bytes.get(UInt32.self, at: 0x0C8) == 0)
        p.setCommandLine(at: GuestPhysicalAddress(0x1_2345_6000))
        #expect(p.bytes.get(UInt32.self, at: 0x228) == 0x2345_6000)
        #expect(p.bytes.get(UInt32.self, at: 0x0C8) == 1)        // ext_cmd_line_ptr
    }

    @Test func initrdAddressAndSize() {
        var p = BootParams(kernel: elfKernel)
        p.setInitrd(at: GuestPhysicalAddress(0x1F9F_F000), size: 0x60_0001)
        #expect(p.bytes.get(UInt32.self, at: 0x218) == 0x1F9F_F000)
        #expect(p.bytes.get(UInt32.self, at: 0x21C) == 0x60_0001)
        #expect(p.bytes.get(UInt32.self, at: 0x0C0) == 0)
        #expect(p.bytes.get(UInt32.self, at: 0x0C4) == 0)
        p.setInitrd(at: GuestPhysicalAddress(0x2_0000_1000), size: 0x1_0000_0002)
        #expect(p.bytes.get(UInt32.self, at: 0x218) == 0x1000)
        #expect(p.bytes.get(UInt32.self, at: 0x21C) == 2)
        #expect(p.bytes.get(UInt32.self, at: 0x0C0) == 2)        // ext_ramdisk_image
        #expect(p.bytes.get(UInt32.self, at: 0x0C4) == 1)        // ext_ramdisk_size
    }

    @Test func memoryMapEntries() throws {
        let memory = try GuestMemory(size: 512 << 20)
        var p = BootParams(kernel: elfKernel)
        p.setMemoryMap(E820Map(memory: memory))
        let b = p.bytes
        #expect(b[0x1E8] == 3)
        let expected: [(UInt64, UInt64, UInt32)] = [
            (0, 0x9_FC00, 1), (0x9_FC00, 0x6_0400, 2), (0x10_0000, (512 << 20) - 0x10_0000, 1),
        ]
        for (i, e) in expected.enumerated() {
            let at = 0x2D0 + 20 * i
            #expect(b.get(UInt64.self, at: at) == e.0)
            #expect(b.get(UInt64.self, at: at + 8) == e.1)
            #expect(b.get(UInt32.self, at: at + 16) == e.2)
        }
        #expect(b[(0x2D0 + 60)..<(0x2D0 + 80)].allSatisfy { $0 == 0 })
    }
}

// MARK: - e820

@Suite struct E820MapTests {
    @Test func fiveHundredTwelveMiB() throws {
        let map = E820Map(memory: try GuestMemory(size: 512 << 20))
        let expected: [E820Map.Entry] = [
            E820Map.Entry(start: 0, size: 0x9_FC00, kind: .ram),
            E820Map.Entry(start: 0x9_FC00, size: 0x6_0400, kind: .reserved),
            E820Map.Entry(start: 0x10_0000, size: 0x1FF0_0000, kind: .ram),
        ]
        #expect(map.entries == expected)
    }

    @Test func aboveFourGiBHasTwoRegionsAndAHole() throws {
        let memory = try GuestMemory(size: (3 << 30) + (64 << 20))
        let map = E820Map(memory: memory)
        #expect(map.entries.count == 4)
        #expect(map.entries[2] == .init(start: 0x10_0000, size: 0xC000_0000 - 0x10_0000, kind: .ram))
        #expect(map.entries[3] == .init(start: 0x1_0000_0000, size: 64 << 20, kind: .ram))
        // Nothing claims the 3–4 GiB MMIO hole.
        let covered = map.entries.contains { $0.start < 0x1_0000_0000 && $0.start + $0.size > 0xC000_0000 }
        #expect(!covered)
        let ram = map.entries.filter { $0.kind == .ram }.reduce(UInt64(0)) { $0 + $1.size }
        #expect(ram == memory.totalSize - 0x6_0400)   // all RAM except the legacy 0x9fc00–1 MiB hole
    }

    @Test func entriesAreSortedAndDisjoint() throws {
        let map = E820Map(memory: try GuestMemory(size: 8 << 20, lowLimit: 4 << 20))
        for (a, b) in zip(map.entries, map.entries.dropFirst()) {
            #expect(a.start + a.size <= b.start)
        }
        #expect(map.entries.last == .init(start: 0x1_0000_0000, size: 4 << 20, kind: .ram))
    }
}

// MARK: - command line

@Suite struct KernelCommandLineTests {
    @Test func splitsWordsAndCollapsesWhitespace() throws {
        var line = try KernelCommandLine("console=ttyS0   quiet\tpanic=-1")
        #expect(line.words == ["console=ttyS0", "quiet", "panic=-1"])
        try line.append(" rootwait ")
        #expect(line.description == "console=ttyS0 quiet panic=-1 rootwait")
        #expect(try line.encoded(maximum: 2047) == Array("console=ttyS0 quiet panic=-1 rootwait".utf8) + [0])
        #expect(try KernelCommandLine().encoded(maximum: 0) == [0])
    }

    @Test(arguments: ["quiet\n", "a\u{0}b", "x\u{7F}", "caf\u{E9}", "emoji=\u{1F600}", "\r"])
    func rejectsNonPrintableOrNonASCII(_ text: String) {
        let error = #expect(throws: BootError.self) { _ = try KernelCommandLine(text) }
        #expect(error?.kind == "commandLineInvalid")
    }

    @Test func rejectedAppendLeavesTheLineUnchanged() throws {
        var line = try KernelCommandLine("a b")
        #expect(throws: BootError.self) { try line.append("c \u{1B}d") }
        #expect(line.words == ["a", "b"])
    }

    @Test func tooLong() throws {
        let line = try KernelCommandLine(String(repeating: "x", count: 100) + " y")
        #expect(throws: BootError.commandLineTooLong(length: 102, maximum: 101)) {
            _ = try line.encoded(maximum: 101)
        }
        #expect(try line.encoded(maximum: 102).count == 103)
    }

    @Test func containsKey() throws {
        let line = try KernelCommandLine("console=ttyS0 quiet rootwait noapic= earlyprintk")
        #expect(line.contains(key: "console"))
        #expect(line.contains(key: "quiet"))
        #expect(line.contains(key: "noapic"))
        #expect(!line.contains(key: "cons"))          // prefix of a key is not the key
        #expect(!line.contains(key: "root"))          // "rootwait" is a different word
        #expect(!line.contains(key: "ttyS0"))         // values are not keys
        #expect(!line.contains(key: "earlyprintk=x"))
    }
}

// MARK: - initrd placement

@Suite struct InitrdPlacementTests {
    private func kernel(end: UInt64, initrdMax: UInt64 = 0x7FFF_FFFF) -> LoadedKernel {
        LoadedKernel(format: .elf, entry: GuestPhysicalAddress(0x100_0000), end: GuestPhysicalAddress(end),
                     setupHeader: nil, initrdAddressMax: initrdMax, commandLineMaximum: 2047)
    }

    @Test func placedHighPageAlignedAboveTheKernel() throws {
        let memory = try GuestMemory(size: 512 << 20)
        let k = kernel(end: 0x300_0123)
        let size: UInt64 = 0x60_0001
        let address = try InitrdPlacement.address(size: size, kernel: k, memory: memory)
        #expect(address == GuestPhysicalAddress(0x1F9F_F000))
        #expect(address.rawValue & 0xFFF == 0)
        #expect(address.rawValue >= 0x300_1000)
        #expect(address.rawValue + size <= memory.lowEnd.rawValue)
        #expect(memory.lowEnd.rawValue - (address.rawValue + size) < 0x1000)   // as high as possible
    }

    @Test func respectsInitrdAddressMax() throws {
        let memory = try GuestMemory(size: 512 << 20)
        let address = try InitrdPlacement.address(size: 0x1000, kernel: kernel(end: 0x300_0000, initrdMax: 0x0FFF_FFFF),
                                                  memory: memory)
        #expect(address == GuestPhysicalAddress(0x0FFF_F000))
    }

    @Test func exactFitIsAccepted() throws {
        let memory = try GuestMemory(size: 64 << 20)
        let address = try InitrdPlacement.address(size: 0x100_0000, kernel: kernel(end: 0x300_0000), memory: memory)
        #expect(address == GuestPhysicalAddress(0x300_0000))
    }

    @Test func tooLarge() throws {
        let memory = try GuestMemory(size: 64 << 20)
        #expect(throws: BootError.initrdTooLarge(size: 0x100_1000, available: 0x100_0000)) {
            _ = try InitrdPlacement.address(size: 0x100_1000, kernel: kernel(end: 0x300_0000), memory: memory)
        }
        // Kernel reaching the end of memory: nothing left at all.
        #expect(throws: BootError.initrdTooLarge(size: 1, available: 0)) {
            _ = try InitrdPlacement.address(size: 1, kernel: kernel(end: 0x400_0000), memory: memory)
        }
    }
}

// MARK: - early page tables and GDT

@Suite struct EarlyPageTablesTests {
    @Test func identityMapsFourGiBWithTwoMiBPages() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try memory.fill(0xFF, at: GuestPhysicalAddress(0x9000), count: 0x6000)   // must be cleared
        try EarlyPageTables.write(into: memory)

        #expect(try memory.load(UInt64.self, at: BootLayout.pml4) == 0xA003)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x9008)) == 0)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x9FF8)) == 0)
        for gib in 0..<4 {
            #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0xA000 + UInt64(gib) * 8)) == 0xB003 + UInt64(gib) * 0x1000)
        }
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0xA020)) == 0)
        let samples: [(pd: UInt64, index: UInt64, physical: UInt64)] = [
            (0xB000, 0, 0), (0xB000, 1, 0x20_0000), (0xB000, 8, 0x100_0000), (0xB000, 511, 0x3FE0_0000),
            (0xC000, 0, 0x4000_0000), (0xE000, 128, 0xD000_0000), (0xE000, 511, 0xFFE0_0000),
        ]
        for s in samples {
            #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(s.pd + s.index * 8)) == s.physical | 0x83)
        }
    }

    @Test func gdtHasFlatCodeAndDataDescriptors() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try EarlyPageTables.write(into: memory)
        #expect(EarlyPageTables.codeSelector == 0x10)
        #expect(EarlyPageTables.dataSelector == 0x18)
        #expect(try memory.load(UInt64.self, at: BootLayout.gdt) == 0)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0x508)) == 0)
        let code = try memory.load(UInt64.self, at: GuestPhysicalAddress(0x500 + UInt64(EarlyPageTables.codeSelector)))
        let data = try memory.load(UInt64.self, at: GuestPhysicalAddress(0x500 + UInt64(EarlyPageTables.dataSelector)))
        func bit(_ d: UInt64, _ n: UInt64) -> UInt64 { (d >> n) & 1 }
        // code: present, DPL 0, S=1, type execute/read (accessed), L=1, D=0, G=1, limit 0xFFFFF, base 0.
        #expect(bit(code, 47) == 1 && (code >> 45) & 3 == 0 && bit(code, 44) == 1)
        #expect((code >> 40) & 0xF == 0xB)
        #expect(bit(code, 53) == 1 && bit(code, 54) == 0 && bit(code, 55) == 1)
        #expect(code & 0xFFFF == 0xFFFF && (code >> 48) & 0xF == 0xF)
        #expect((code >> 16) & 0xFF_FFFF == 0 && code >> 56 == 0)
        // data: present, DPL 0, S=1, type read/write (accessed), D/B=1, L=0, G=1.
        #expect(bit(data, 47) == 1 && (data >> 45) & 3 == 0 && bit(data, 44) == 1)
        #expect((data >> 40) & 0xF == 0x3)
        #expect(bit(data, 53) == 0 && bit(data, 54) == 1 && bit(data, 55) == 1)
    }

    @Test func tablesFitInTheSmallestGuestAndStopBelow0xF000() throws {
        // The tables and GDT live below 64 KiB, so the 1 MiB minimum guest holds them; the last
        // page directory ends at 0xF000 and nothing after it is touched.
        let memory = try GuestMemory(size: 1 << 20)
        try EarlyPageTables.write(into: memory)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0xEFF8)) == 0xFFE0_0083)
        #expect(try memory.load(UInt64.self, at: GuestPhysicalAddress(0xF000)) == 0)
    }
}

// MARK: - ACPI tables

@Suite struct ACPITablesTests {
    private func sum(_ bytes: some Collection<UInt8>) -> UInt8 { bytes.reduce(0, &+) }
    private func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * $1) } }
    private func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * $1) } }

    /// The table at guest-physical `address` inside the blob, checked for signature and checksum.
    private func table(_ blob: [UInt8], at address: UInt64, signature: String) -> [UInt8] {
        let offset = Int(address - ACPITables.base.rawValue)
        let length = Int(u32(blob, offset + 4))
        let t = Array(blob[offset..<offset + length])
        #expect(Array(t[0..<4]) == Array(signature.utf8))
        #expect(sum(t) == 0, "\(signature) checksum")
        return t
    }

    @Test(arguments: [1, 2, 8])
    func rsdpLeadsToFADTDSDTAndMADT(cpus: Int) throws {
        let blob = ACPITables.blob(cpuCount: cpus)
        #expect(Array(blob[0..<8]) == Array("RSD PTR ".utf8))
        #expect(sum(blob[0..<20]) == 0)             // ACPI 1.0 checksum
        #expect(sum(blob[0..<36]) == 0)             // extended checksum
        #expect(blob[15] == 2)
        let xsdt = table(blob, at: u64(blob, 24), signature: "XSDT")
        #expect(xsdt.count == 36 + 16)
        let fadt = table(blob, at: u64(xsdt, 36), signature: "FACP")
        #expect(fadt.count == 276)
        #expect(fadt[8] == 6)
        #expect(u32(fadt, 112) & (1 << 20) == 0)    // not hardware-reduced: the 8259 and ISA IRQs exist
        #expect(u32(fadt, 56) == 0x600 && u32(fadt, 64) == 0x604 && fadt[88] == 4 && fadt[89] == 2)
        #expect(fadt[46] == 9)                      // SCI_INT
        _ = table(blob, at: u64(fadt, 140), signature: "DSDT")
        let madt = table(blob, at: u64(xsdt, 44), signature: "APIC")
        #expect(u32(madt, 36) == 0xFEE0_0000)
        // Entries: one enabled local APIC per CPU with APIC id = CPU index, then the I/O APIC.
        var offset = 44
        var apicIDs: [UInt8] = []
        var ioAPICs = 0
        var overrides: [UInt8] = []
        while offset < madt.count {
            let type = madt[offset], length = Int(madt[offset + 1])
            if type == 0 {
                apicIDs.append(madt[offset + 3])
                #expect(u32(madt, offset + 4) & 1 == 1)
            } else if type == 1 {
                ioAPICs += 1
                #expect(u32(madt, offset + 4) == 0xFEC0_0000)
                #expect(u32(madt, offset + 8) == 0)
            } else if type == 2 {
                overrides.append(madt[offset + 3])
            }
            offset += length
        }
        #expect(offset == madt.count)
        #expect(apicIDs == (0..<cpus).map(UInt8.init))
        #expect(ioAPICs == 1)
        #expect(overrides == [9])
    }

    @Test func tablesStayInsideTheReservedBIOSArea() {
        let blob = ACPITables.blob(cpuCount: 64)
        #expect(ACPITables.base.rawValue + UInt64(blob.count) <= 0x10_0000)
        #expect(ACPITables.base.rawValue >= 0xE_0000)   // where Linux scans for the RSDP
    }

    @Test func bootParamsCarryTheRSDPAddress() {
        let kernel = LoadedKernel(format: .elf, entry: GuestPhysicalAddress(0x100_0000), end: GuestPhysicalAddress(0x200_0000),
                                  setupHeader: nil, initrdAddressMax: 0x7FFF_FFFF, commandLineMaximum: 2047)
        var params = BootParams(kernel: kernel)
        params.setACPIRoot(at: ACPITables.base)
        #expect(u64(params.bytes, 0x70) == 0xE_0000)
    }
}
