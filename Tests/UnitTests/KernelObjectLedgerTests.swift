import AllocationLedger
import Testing

/// The kernel ledger's rules: frees of known objects, of objects from before tracking (counted,
/// not findings), double frees, mismatched frees, reuse of an address whose free was missed,
/// implausible results, and the freed-slot view the reachability scanner uses.
struct KernelObjectLedgerTests {
    static let base: UInt64 = 0xFFFF_8880_0100_0000

    func allocation(_ address: UInt64, _ size: UInt64 = 64, _ allocator: KernelAllocator = .kmalloc, cache: String? = nil,
                    time: UInt64 = 1) -> KernelAllocation {
        KernelAllocation(address: address, requestedSize: size - 8, allocatedSize: size, allocator: allocator, cacheName: cache,
                         callSite: 0xFFFF_FFFF_8100_1234, stack: [0xFFFF_FFFF_8100_1234, 0xFFFF_FFFF_8100_2000], time: time, cpu: 1, task: 42)
    }

    @Test func freesOfKnownObjectsRemoveThemAndCount() {
        let ledger = KernelObjectLedger()
        #expect(ledger.allocate(allocation(Self.base, 64)) == .recorded)
        #expect(ledger.allocate(allocation(Self.base + 0x100, 192, .kmemCache, cache: "dentry")) == .recorded)
        guard case .freed(let object) = ledger.free(Self.base, by: .kfree, callSite: 7, time: 2) else {
            Issue.record("the kmalloc object was not freed")
            return
        }
        #expect(object.allocatedSize == 64 && object.requestedSize == 56 && object.task == 42 && object.cpu == 1)
        #expect(ledger.stack(object.stack) == [0xFFFF_FFFF_8100_1234, 0xFFFF_FFFF_8100_2000])
        let live = ledger.liveObjects()
        #expect(live.map(\.address) == [Self.base + 0x100])
        #expect(ledger.cacheName(live.first?.cache) == "dentry")
        let c = ledger.counters
        #expect(c.totalAllocations == 2 && c.totalFrees == 1 && c.allocations[.kmemCache] == 1 && c.frees[.kfree] == 1)
        #expect(c.bytesAllocated == 256 && c.bytesFreed == 64 && c.findings == 0)
    }

    @Test func aFreeOfAnObjectFromBeforeTrackingIsCountedNotAFinding() {
        let ledger = KernelObjectLedger()
        #expect(ledger.free(Self.base, by: .kmemCacheFree, callSite: 7, time: 2) == .allocatedBeforeTracking)
        #expect(ledger.free(0, by: .kfree, callSite: 7, time: 2) == .null)
        #expect(ledger.free(16, by: .kfree, callSite: 7, time: 2) == .null)    // ZERO_SIZE_PTR
        #expect(ledger.findings.isEmpty)
        #expect(ledger.counters.freedAllocatedBeforeTracking == 1 && ledger.counters.nullFrees == 2)
        // Not a freed slot: its size is unknown.
        #expect(ledger.freedSlots.isEmpty)
    }

    @Test func aSecondFreeWithoutAnAllocationBetweenIsADoubleFree() {
        let ledger = KernelObjectLedger()
        ledger.allocate(allocation(Self.base))
        ledger.free(Self.base, by: .kfree, callSite: 7, stack: [9], time: 2)
        #expect(ledger.free(Self.base, by: .kfree, callSite: 8, stack: [10], time: 3) == .finding(.doubleFree))
        let finding = ledger.findings.first
        #expect(finding?.kind == .doubleFree && finding?.callSite == 8 && ledger.stack(finding?.stack ?? 99) == [10])
        // Allocated again, then freed once: no finding.
        ledger.allocate(allocation(Self.base))
        #expect(ledger.free(Self.base, by: .kfree, callSite: 7, time: 4) != .finding(.doubleFree))
        #expect(ledger.findings.count == 1)
    }

    @Test func vfreeOfASlabObjectIsAMismatch() {
        let ledger = KernelObjectLedger()
        ledger.allocate(allocation(Self.base))
        #expect(ledger.free(Self.base, by: .vfree, callSite: 7, time: 2) == .finding(.mismatchedFree))
        #expect(ledger.liveCount == 0)
        ledger.allocate(allocation(Self.base + 0x1000, 4096, .vmalloc))
        guard case .freed = ledger.free(Self.base + 0x1000, by: .vfree, callSite: 7, time: 3) else {
            Issue.record("vfree of a vmalloc object")
            return
        }
        // kmem_cache_free and the bulk free take any slab object (kmalloc objects live in caches too).
        ledger.allocate(allocation(Self.base + 0x2000))
        guard case .freed = ledger.free(Self.base + 0x2000, by: .kmemCacheFreeBulk, callSite: 7, time: 4) else {
            Issue.record("bulk free of a kmalloc object")
            return
        }
        #expect(ledger.findings.map(\.kind) == [.mismatchedFree])
    }

    @Test func anAllocationOverALiveObjectReplacesItAsIfItsFreeWasMissed() {
        let ledger = KernelObjectLedger()
        ledger.allocate(allocation(Self.base, 64, time: 1))
        guard case .replaced(let old) = ledger.allocate(allocation(Self.base, 128, time: 2)) else {
            Issue.record("not replaced")
            return
        }
        #expect(old.allocatedSize == 64 && old.time == 1)
        #expect(ledger.object(at: Self.base)?.allocatedSize == 128 && ledger.liveCount == 1)
        #expect(ledger.counters.replacedWhileLive == 1 && ledger.findings.isEmpty)
    }

    @Test func freedSlotsHoldWhatWasFreedAndNotAllocatedAgain() {
        let ledger = KernelObjectLedger()
        ledger.allocate(allocation(Self.base, 64))
        ledger.allocate(allocation(Self.base + 0x40, 96))
        ledger.free(Self.base, by: .kfree, callSite: 1, time: 2)
        ledger.free(Self.base + 0x40, by: .kfree, callSite: 1, time: 2)
        #expect(ledger.freedSlots == [Self.base: 64, Self.base + 0x40: 96])
        ledger.allocate(allocation(Self.base, 32))
        #expect(ledger.freedSlots == [Self.base + 0x40: 96])
    }

    @Test func resultsOutsideTheKernelHalfAreRefusedAsFindings() {
        let ledger = KernelObjectLedger()
        #expect(ledger.allocate(allocation(0x7FFF_0000_1000)) == .refused)
        #expect(ledger.allocate(KernelAllocation(address: UInt64.max - 8, requestedSize: 64, allocatedSize: 64, allocator: .kmalloc,
                                                 callSite: 0, time: 1)) == .refused)
        #expect(ledger.liveCount == 0 && ledger.findings.map(\.kind) == [.implausibleObject, .implausibleObject])
        #expect(ledger.counters.totalAllocations == 0)
    }

    @Test func theSnapshotIsConsistentAndTheRangeNeverWraps() {
        let ledger = KernelObjectLedger()
        ledger.allocate(allocation(Self.base + 0x80, 64, .kmemCache, cache: "kmalloc-64"))
        ledger.allocate(allocation(Self.base, 64, .kmemCache, cache: "kmalloc-64"))
        let snapshot = ledger.snapshot()
        #expect(snapshot.objects.map(\.address) == [Self.base, Self.base + 0x80])
        #expect(snapshot.cacheNames == ["kmalloc-64"] && snapshot.cacheName(snapshot.objects[0].cache) == "kmalloc-64")
        #expect(snapshot.objects[0].range == Self.base..<Self.base + 64)
        let huge = KernelObject(address: UInt64.max - 4, requestedSize: 0, allocatedSize: 64, allocator: .kmalloc, cache: nil,
                                callSite: 0, stack: 0, time: 0, cpu: 0, task: 0)
        #expect(huge.range.upperBound == UInt64.max)
    }
}
