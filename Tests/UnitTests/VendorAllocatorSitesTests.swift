import AllocationLedger
import AllocationTracing
import Foundation
import Reachability
import Testing
import X86

extension AllocatorSymbolsTests {
    /// jemalloc's 4 own names and 12 je_ ones, tcmalloc's 30, mimalloc's 31.
    static let vendorNameCount = 4 + 12 + 30 + 31
}

/// The allocators real services link instead of glibc's (issue 18), as Debian ships them
/// (scripts/setup.sh installs libjemalloc-dev, libgoogle-perftools-dev, libmimalloc-dev): every
/// entry point they export is armed under the name a program calls, and an address that names
/// several families (tcmalloc's and mimalloc's `free` is also `operator delete` and `delete[]`)
/// never makes a mismatched-release finding.
@Suite struct VendorAllocatorSitesTests {
    static let libraries = "/usr/lib/x86_64-linux-gnu/"

    func sites(_ library: String) throws -> [String: AllocatorSite] {
        let path = Self.libraries + library
        try #require(FileManager.default.fileExists(atPath: path), "\(path) is missing: run scripts/setup.sh")
        let sites = try AllocatorSiteFinder.sites(inFile: path)
        #expect(sites.unarmable.isEmpty, "\(library): \(sites.unarmable.map { "\($0.symbol): \($0.reason)" })")
        return Dictionary(sites.armable.map { ($0.symbol, $0) }, uniquingKeysWith: { first, _ in first })
    }

    @Test func jemallocsOwnAPIIsArmed() throws {
        let sites = try sites("libjemalloc.so.2")
        for (name, function) in [("malloc", AllocatorFunction.malloc), ("calloc", .calloc), ("realloc", .realloc), ("free", .free),
                                 ("mallocx", .malloc), ("rallocx", .realloc), ("dallocx", .free), ("sdallocx", .free),
                                 ("_Znwm", .operatorNew), ("_Znam", .operatorNewArray), ("_ZdlPv", .operatorDelete), ("_ZdaPvm", .operatorDeleteArray)] {
            #expect(sites[name]?.entryPoint.function == function, "\(name)")
        }
        // jemalloc keeps new and new[], delete and delete[] apart: mismatches are still found.
        #expect(sites.values.allSatisfy { !$0.aliasesOtherFamilies })
        #expect(sites["rallocx"]?.entryPoint.convention == AllocatorSymbols.entryPoint(named: "realloc")?.convention)
    }

    @Test func tcmallocsAliasesAcrossFamiliesAreMarked() throws {
        let sites = try sites("libtcmalloc_minimal.so.4")
        let free = try #require(sites["free"])
        #expect(Set(free.aliases).isSuperset(of: ["tc_free", "_ZdlPv", "_ZdaPv", "tc_delete", "tc_deletearray"]))
        #expect(free.aliasesOtherFamilies)
        let new = try #require(sites["_Znwm"])
        #expect(new.aliases.contains("_Znam") && new.aliases.contains("tc_new") && new.aliasesOtherFamilies)
        #expect(sites["malloc"]?.aliases.contains("tc_malloc") == true && sites["malloc"]?.aliasesOtherFamilies == false)
        #expect(sites["posix_memalign"]?.aliases.contains("tc_posix_memalign") == true)
    }

    @Test func mimallocsOwnEntryPointsAreSitesOfTheirOwn() throws {
        let sites = try sites("libmimalloc.so.2")
        #expect(sites["malloc"]?.aliases.contains("mi_malloc") == true)
        #expect(sites["free"]?.aliases.contains("mi_free") == true && sites["free"]?.aliasesOtherFamilies == true)
        // Not aliases of a standard name: armed under their own.
        for name in ["mi_zalloc", "mi_malloc_aligned", "mi_mallocn", "mi_reallocn"] {
            #expect(sites[name] != nil, "\(name)")
        }
        // mi_free_size is sized delete's address: armed, as an alias.
        #expect(sites.values.contains { $0.aliases.contains("mi_free_size") && $0.aliasesOtherFamilies })
        #expect(sites["mi_malloc_aligned"]?.entryPoint.convention == AllocatorConvention(size: .register(.rdi), alignment: .rsi, result: .returnRegister))
    }

    /// A release at an address that is also another family's deallocator is not a mismatch; the
    /// same release at a plain `free` is.
    @Test func aReleaseAtAnAliasedSiteIsNoMismatch() {
        let ledger = AllocationLedger()
        let space = PageTableRoot(cr3: 0x1234_5000)
        for address: UInt64 in [0x55_0000_1000, 0x55_0000_2000] {
            ledger.allocate(in: space, address: address, size: 32, function: .operatorNewArray, stack: [0x40_1000], thread: 1, time: 1)
        }
        ledger.release(in: space, address: 0x55_0000_1000, function: .free, stack: [0x40_2000], thread: 1, time: 2, strict: true,
                       checksFamily: false)
        ledger.release(in: space, address: 0x55_0000_2000, function: .free, stack: [0x40_2000], thread: 1, time: 2, strict: true)
        let findings = ledger.snapshot().spaces.flatMap { $0.findings }
        #expect(findings.map(\.kind) == [.mismatchedRelease] && findings.first?.address == 0x55_0000_2000)
    }
}
