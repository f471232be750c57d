import AllocationLedger
import AllocationTracing
import DebugInfo
import Foundation
import LeakAnalysis
import Testing

/// Host files the site tests read.
private enum SiteFiles {
    static let libc = "/lib/x86_64-linux-gnu/libc.so.6"
    static let libstdcxx = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"

    /// The default guest image's static programs (built by scripts/setup.sh).
    static let guestPrograms: String = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { break }
        }
        return url.appendingPathComponent("guest-images/build/default/rootfs/usr/bin").path
    }()
    static let staticCxx = guestPrograms + "/lv-leak-cxx"

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// `count` bytes of `path` at `offset`, read without libelf.
    static func bytes(_ path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    /// Catalogued names by address as binutils' `nm` lists the defined symbols (`-D`: `.dynsym`).
    static func nmAllocatorNames(_ path: String, dynamic: Bool) throws -> [UInt64: Set<String>] {
        let output = try DebugInfoShell.check("nm", (dynamic ? ["-D"] : []) + ["--defined-only", path])
        var names: [UInt64: Set<String>] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let address = UInt64(fields[0], radix: 16) else { continue }
            let name = String(fields[2].prefix { $0 != "@" })  // nm -D appends @VERSION
            guard AllocatorSymbols.entryPoint(named: name) != nil, "TWtwi".contains(fields[1]) else { continue }
            names[address, default: []].insert(name)
        }
        return names
    }

    /// The finder's names by address, armable or not.
    static func names(_ sites: AllocatorSites) -> [UInt64: Set<String>] {
        var names: [UInt64: Set<String>] = [:]
        for site in sites.armable { names[site.address, default: []].formUnion([site.symbol] + site.aliases) }
        for site in sites.unarmable { names[site.address, default: []].formUnion([site.symbol] + site.aliases) }
        return names
    }

    /// The C++ operator names of the catalogue.
    static let operatorNames = AllocatorSymbols.names.filter { $0.hasPrefix("_Z") }
}

extension ELFFile {
    /// Whether `path` starts with the ELF magic.
    fileprivate static func isELF(_ path: String) throws -> Bool {
        try SiteFiles.bytes(path, at: 0, count: 4) == [0x7F, 0x45, 0x4C, 0x46]
    }
}

private let endbr64: [UInt8] = [0xF3, 0x0F, 0x1E, 0xFA]

@Suite struct AllocatorSiteTests {
    // MARK: Debian 12 libc.so.6 (glibc 2.36, not built with CET)

    @Test(.enabled(if: SiteFiles.exists(SiteFiles.libc)))
    func libcHasEveryMallocFamilyFunctionArmable() throws {
        let sites = try AllocatorSiteFinder.sites(inFile: SiteFiles.libc)
        #expect(sites.unarmable.isEmpty, "\(sites.unarmable)")
        let byName = Dictionary(uniqueKeysWithValues: sites.armable.map { ($0.symbol, $0) })
        #expect(
            Set(byName.keys) == ["malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "memalign", "valloc", "pvalloc"])
        let everyName = Set(sites.armable.flatMap { [$0.symbol] + $0.aliases })
        for name in ["malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc"] {
            #expect(everyName.contains(name), "\(name)")
        }
        // Aliases share one address; the public name is preferred.
        #expect(byName["malloc"]?.aliases == ["__libc_malloc"])
        #expect(byName["free"]?.aliases == ["cfree", "__libc_free"])
        #expect(byName["memalign"]?.aliases == ["aligned_alloc", "__libc_memalign"])
        #expect(byName["reallocarray"]?.aliases == ["__libc_reallocarray"])
        #expect(byName["posix_memalign"]?.aliases == [])
        // The first instructions of this build (objdump -d).
        #expect(byName["malloc"]?.instruction.operation == .push(.r12))
        #expect(byName["calloc"]?.instruction.operation == .push(.r13))
        #expect(byName["realloc"]?.instruction.operation == .push(.r15))
        #expect(byName["free"]?.instruction.operation == .test(.rdi, .rdi, width: .qword))
        #expect(byName["reallocarray"]?.instruction.operation == .move(destination: .rax, source: .rsi))
        #expect(byName["free"]?.instruction.bytes == [0x48, 0x85, 0xFF])
        #expect(byName["reallocarray"]?.instruction.bytes == [0x48, 0x89, 0xF0])
        for name in ["malloc", "calloc", "realloc", "free", "reallocarray"] {
            #expect(byName[name]?.entryPoint.function.rawValue == name)
        }
        #expect(byName["posix_memalign"]?.entryPoint.function == .posixMemalign)
        // memalign, valloc, pvalloc and posix_memalign first test the same byte
        // (`cmpb $0, __malloc_initialized(%rip)`), which lies in the writable segment.
        var targets: Set<UInt64> = []
        for name in ["memalign", "valloc", "pvalloc", "posix_memalign"] {
            let site = try #require(byName[name])
            guard case .compareRIPRelative(.byte, let displacement, 0) = site.instruction.operation else {
                Issue.record("\(name): \(site.instruction)")
                continue
            }
            #expect(site.instruction.length == 7)
            targets.insert(site.address + 7 &+ UInt64(bitPattern: Int64(displacement)))
        }
        #expect(targets.count == 1)
        let writable = try ELFFile(path: SiteFiles.libc).loadSegments.filter(\.isWritable)
        let target = try #require(targets.first)
        #expect(writable.contains { target >= $0.virtualAddress && target - $0.virtualAddress < $0.memorySize })
    }

    @Test(.enabled(if: SiteFiles.exists(SiteFiles.libc)))
    func libcAddressesAgreeWithNm() throws {
        let sites = try AllocatorSiteFinder.sites(inFile: SiteFiles.libc)
        #expect(SiteFiles.names(sites) == (try SiteFiles.nmAllocatorNames(SiteFiles.libc, dynamic: true)))
    }

    /// Debian's libc.so.6 and libstdc++.so.6 are linked with every PT_LOAD at p_offset == p_vaddr
    /// (readelf -l), so a function's file offset is its address; the bytes there, read without
    /// libelf, are the instruction.
    @Test(.enabled(if: SiteFiles.exists(SiteFiles.libc) && SiteFiles.exists(SiteFiles.libstdcxx)), arguments: [
        SiteFiles.libc, SiteFiles.libstdcxx,
    ])
    func sharedLibraryOffsetsAreAddressesAndHoldTheInstruction(path: String) throws {
        let sites = try AllocatorSiteFinder.sites(inFile: path)
        #expect(!sites.armable.isEmpty)
        for site in sites.armable {
            #expect(site.fileOffset == site.address, "\(site.symbol)")
            #expect(try SiteFiles.bytes(path, at: site.fileOffset, count: site.instruction.length) == site.instruction.bytes)
        }
    }

    // MARK: Debian 12 libstdc++.so.6 (GCC 12)

    @Test(.enabled(if: SiteFiles.exists(SiteFiles.libstdcxx)))
    func libstdcxxHasEveryOperatorNewAndDeleteStartingWithEndbr64() throws {
        let sites = try AllocatorSiteFinder.sites(inFile: SiteFiles.libstdcxx)
        #expect(sites.unarmable.isEmpty, "\(sites.unarmable)")
        #expect(SiteFiles.operatorNames.count == 20)
        #expect(sites.armable.map(\.symbol).sorted() == SiteFiles.operatorNames.sorted())
        for site in sites.armable {
            #expect(site.aliases.isEmpty)
            #expect(site.instruction.bytes == endbr64, "\(site.symbol)")
            #expect(site.instruction.operation == .endbr64)
            let expected: AllocatorFunction =
                switch site.symbol.prefix(4) {
                case "_Znw": .operatorNew
                case "_Zna": .operatorNewArray
                case "_Zdl": .operatorDelete
                default: .operatorDeleteArray
                }
            #expect(site.entryPoint.function == expected, "\(site.symbol)")
            #expect(site.entryPoint.convention.nothrow == site.symbol.hasSuffix("RKSt9nothrow_t"))
            #expect((site.entryPoint.convention.alignment != nil) == site.symbol.contains("St11align_val_t"))
        }
        #expect(SiteFiles.names(sites) == (try SiteFiles.nmAllocatorNames(SiteFiles.libstdcxx, dynamic: true)))
    }

    // MARK: Static guest programs

    @Test(.enabled(if: SiteFiles.exists(SiteFiles.staticCxx), "guest image not built (run scripts/setup.sh)"))
    func staticCxxProgramHasGlibcAndOperatorSites() throws {
        let file = try ELFFile(path: SiteFiles.staticCxx)
        #expect(file.objectType == .executable)
        let sites = try AllocatorSiteFinder.sites(in: file)
        #expect(sites.unarmable.isEmpty, "\(sites.unarmable)")
        let byName = Dictionary(uniqueKeysWithValues: sites.armable.map { ($0.symbol, $0) })
        #expect(byName["malloc"]?.instruction.bytes == [0x55])  // push rbp
        #expect(byName["malloc"]?.aliases == ["__libc_malloc"])
        #expect(byName["free"]?.instruction.operation == .test(.rdi, .rdi, width: .qword))
        #expect(byName["realloc"]?.instruction.operation == .push(.r15))
        #expect(byName["calloc"]?.instruction.operation == .push(.r13))
        for name in ["memalign", "valloc", "pvalloc", "posix_memalign"] {
            guard case .compareRIPRelative(.byte, _, 0)? = byName[name]?.instruction.operation else {
                Issue.record("\(name): \(String(describing: byName[name]?.instruction))")
                continue
            }
        }
        let operators = sites.armable.filter { $0.symbol.hasPrefix("_Z") }
        #expect(operators.count >= 8)
        #expect(operators.allSatisfy { $0.instruction.bytes == endbr64 })
        #expect(byName["_Znwm"] != nil && byName["_ZdlPv"] != nil && byName["_Znam"] != nil && byName["_ZdaPv"] != nil)
        // Linked at 0x400000 with the first PT_LOAD at file offset 0 and the others on matching pages.
        for site in sites.armable {
            #expect(site.fileOffset == site.address - 0x40_0000, "\(site.symbol)")
            #expect(
                try SiteFiles.bytes(SiteFiles.staticCxx, at: site.fileOffset, count: site.instruction.length)
                    == site.instruction.bytes)
        }
        #expect(SiteFiles.names(sites) == (try SiteFiles.nmAllocatorNames(SiteFiles.staticCxx, dynamic: false)))
    }

    @Test(.enabled(if: SiteFiles.exists(SiteFiles.staticCxx), "guest image not built (run scripts/setup.sh)"))
    func everyStaticGuestProgramIsFullyArmable() throws {
        let programs = try FileManager.default.contentsOfDirectory(atPath: SiteFiles.guestPrograms)
            .filter { $0.hasPrefix("lv-") }
        #expect(programs.count >= 5)
        for program in programs {
            let path = SiteFiles.guestPrograms + "/" + program
            guard try ELFFile.isELF(path) else { continue }  // lv-load-virtio is a shell script
            let sites = try AllocatorSiteFinder.sites(inFile: path)
            #expect(sites.unarmable.isEmpty, "\(program): \(sites.unarmable)")
            #expect(sites.armable.contains { $0.symbol == "malloc" }, "\(program)")
        }
    }

    // MARK: A gcc-built fixture with each case the finder tells apart

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func fixtureSitesAreArmedSkippedOrRefusedWithTheReason() throws {
        let scratch = try DebugInfoScratch()
        let path = try buildFixture(in: scratch)
        let sites = try AllocatorSiteFinder.sites(inFile: path)
        let symbols = try ELFFile(path: path).symbolEntries(in: .symtab)
        func address(_ name: String) throws -> UInt64 { try #require(symbols.first { $0.name == name }).value }

        #expect(sites.armable.map(\.symbol) == ["aligned_alloc", "reallocarray"])
        let aligned = try #require(sites.armable.first)
        #expect(aligned.address == (try address("aligned_alloc")))
        #expect(aligned.instruction.operation == .subtractFromStackPointer(8))
        #expect(aligned.entryPoint.function == .memalign)
        #expect(aligned.entryPoint.convention == AllocatorSymbols.entryPoint(named: "memalign")?.convention)
        let reallocarray = try #require(sites.armable.last)
        #expect(reallocarray.aliases == ["__libc_reallocarray"])
        #expect(reallocarray.instruction.description == "mov rax, rsi")
        for site in sites.armable {
            #expect(try SiteFiles.bytes(path, at: site.fileOffset, count: site.instruction.length) == site.instruction.bytes)
        }

        let refused = Dictionary(uniqueKeysWithValues: sites.unarmable.map { ($0.symbol, $0) })
        #expect(Set(refused.keys) == ["valloc", "memalign", "pvalloc"])
        // Bytes read stop at the symbol's end: call +0; pop rax; ret.
        #expect(refused["valloc"]?.reason == .unsupportedInstruction([0xE8, 0x00, 0x00, 0x00, 0x00, 0x58, 0xC3]))
        #expect(refused["valloc"]?.reason.description == "first instruction not supported: e8 00 00 00 00 58 c3")
        #expect(refused["memalign"]?.reason == .notExecutable)
        #expect(refused["memalign"]?.fileOffset != nil)
        #expect(refused["pvalloc"]?.reason == .indirectFunction)
        #expect(refused["pvalloc"]?.address == (try address("pvalloc")))
        // calloc and free are PLT imports (undefined), _Znwm has no size: none is a site.
        let dynamic = try ELFFile(path: path).symbolEntries(in: .dynsym)
        #expect(dynamic.contains { $0.name == "calloc" && !$0.isDefined })
        #expect(symbols.contains { $0.name == "calloc@GLIBC_2.2.5" && !$0.isDefined })
        #expect(symbols.contains { $0.name == "_Znwm" && $0.isDefined && $0.size == 0 })
        let all = Set(SiteFiles.names(sites).values.flatMap { $0 })
        #expect(all.isDisjoint(with: ["calloc", "free", "_Znwm"]))
    }

    // MARK: Errors

    @Test func unreadableFilesAreTypedErrors() throws {
        #expect(throws: AllocationTrackingError.unreadableFile(.cannotOpen(path: "/nonexistent/libc.so.6", errno: ENOENT))) {
            try AllocatorSiteFinder.sites(inFile: "/nonexistent/libc.so.6")
        }
        #expect(throws: AllocationTrackingError.unreadableFile(.notRegularFile(path: "/tmp"))) {
            try AllocatorSiteFinder.sites(inFile: "/tmp")
        }
        let scratch = try DebugInfoScratch()
        let text = try scratch.write(Array("not an ELF file at all\n".utf8), to: "text")
        #expect(throws: AllocationTrackingError.unreadableFile(.notELF(path: text))) {
            try AllocatorSiteFinder.sites(inFile: text)
        }
    }

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func nonX86FilesAreRefused() throws {
        let scratch = try DebugInfoScratch()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try buildFixture(in: scratch))))
        bytes[18] = 183  // e_machine = EM_AARCH64
        bytes[19] = 0
        let patched = try scratch.write(bytes, to: "aarch64")
        #expect(throws: AllocationTrackingError.unsupportedMachine(path: patched, machine: 183, elfClass: .elf64)) {
            try AllocatorSiteFinder.sites(inFile: patched)
        }
    }

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func truncatedFilesAreTypedErrors() throws {
        let scratch = try DebugInfoScratch()
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try buildFixture(in: scratch))))
        for length in stride(from: 0, to: bytes.count, by: 97) {
            let path = try scratch.write(Array(bytes.prefix(length)), to: "cut-\(length)")
            do {
                _ = try AllocatorSiteFinder.sites(inFile: path)
            } catch {
                #expect(error.description.contains(path) || error.description.contains("not an ELF"))
            }
        }
    }

    private func buildFixture(in scratch: DebugInfoScratch) throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/allocation/sites.c").path
        try FileManager.default.copyItem(atPath: source, toPath: scratch.path + "/sites.c")
        return try scratch.build("sites.c", output: "sites", flags: ["-O1"])
    }
}
