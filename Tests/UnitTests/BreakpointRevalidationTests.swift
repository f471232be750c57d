@testable import AllocationTracing
import AllocationLedger
import GuestInterface
import GuestMemory
import Introspection
import LeakAnalysis
import Testing
@testable import VMM

/// Breakpoints are keyed to the page-cache page they were written into: when the file's page is
/// replaced (the file rewritten, or evicted and read again) the new page is armed and the old
/// frame forgotten, and detach writes only where the breakpoint still is (issue 11: after `cp`
/// over an armed file the program ran untracked, and detach wrote into whatever page was then at
/// the old frame).
struct BreakpointRevalidationTests {
    static let inode: UInt64 = 0xFFFF_8880_0100_8000
    static let offset: UInt64 = 0x123
    static let oldFrame: UInt64 = 0xA00, newFrame: UInt64 = 0xA01

    let fixture: PageCacheLocatorTests.Fixture
    let tracker: UserAllocationTracker
    let site: AllocatorSite

    init() throws {
        fixture = try PageCacheLocatorTests().fixture()
        tracker = UserAllocationTracker(kernel: fixture.guest.kernel, files: GuestSymbolFiles(roots: []))
        site = AllocatorSite(symbol: "malloc", aliases: [], entryPoint: try #require(AllocatorSymbols.entryPoint(named: "malloc")),
                             address: 0x1000 + Self.offset, fileOffset: Self.offset,
                             instruction: try #require(PrologueInstruction.decode([0x55])))
        // Armed in file page 0, cached in `oldFrame`.
        try fixture.head(try fixture.folio(frame: Self.oldFrame, index: 0))
        try put(0xCC, frame: Self.oldFrame)
        let armed = ArmedSite(site: site, physical: GuestPhysicalAddress(Self.oldFrame << 12 | Self.offset), original: 0x55, guestPath: "/lib/libc.so.6",
                              inode: Self.inode, mapping: PageCacheLocatorTests.mapping)
        tracker.patcher.table.withLock { t in
            t.sites[armed.physical] = armed
            t.files[Self.inode] = .armed(sites: 1)
        }
    }

    var memory: GuestMemory { fixture.guest.memory }
    func byte(frame: UInt64) throws -> UInt8 { try memory.read(at: GuestPhysicalAddress(frame << 12 | Self.offset), count: 1)[0] }
    func put(_ value: UInt8, frame: UInt64) throws { try memory.write([value], at: GuestPhysicalAddress(frame << 12 | Self.offset)) }
    func armedFrames() -> [UInt64] { tracker.patcher.table.withLock { $0.sites.values.map(\.frame.rawValue).sorted() } }
    func paused() throws -> PausedGuest { PausedGuest(memory: memory, vcpus: try fixture.guest.view().vcpus) }

    @Test func theStateOfABreakpoint() {
        let armed = ArmedSite(site: site, physical: GuestPhysicalAddress(Self.oldFrame << 12 | Self.offset), original: 0x55, guestPath: "")
        #expect(armed.state(cachedFrame: GuestPhysicalAddress(Self.oldFrame << 12), byte: 0xCC) == .inPlace)
        #expect(armed.state(cachedFrame: GuestPhysicalAddress(Self.oldFrame << 12), byte: 0x55) == .overwritten)
        #expect(armed.state(cachedFrame: GuestPhysicalAddress(Self.newFrame << 12), byte: 0xCC) == .moved(toFrame: GuestPhysicalAddress(Self.newFrame << 12)))
        #expect(armed.state(cachedFrame: nil, byte: 0xCC) == .evicted)
    }

    @Test func aPageStillInPlaceIsKeptAndRestoredAtDetach() throws {
        let locator = try fixture.locator()
        #expect(tracker.patcher.revalidate(inode: Self.inode, locator: locator, memory: memory).isEmpty)
        #expect(armedFrames() == [Self.oldFrame << 12])
        let summary = tracker.disarm(try paused())
        #expect(summary.bytesRestored == 1 && summary.bytesChangedByGuest == 0 && summary.notes.isEmpty)
        #expect(try byte(frame: Self.oldFrame) == 0x55)
    }

    @Test func aReplacedPageIsArmedAgainAndTheOldFrameNeverWritten() throws {
        // `cp` over the file: the page cache holds another frame at index 0 with the same code; the
        // old frame now belongs to something else (which happens to hold 0xCC there).
        try fixture.head(try fixture.folio(frame: Self.newFrame, index: 0))
        try put(0x55, frame: Self.newFrame)
        #expect(tracker.patcher.revalidate(inode: Self.inode, locator: try fixture.locator(), memory: memory).isEmpty)
        #expect(armedFrames() == [Self.newFrame << 12])
        #expect(try byte(frame: Self.newFrame) == 0xCC)
        let summary = tracker.disarm(try paused())
        #expect(summary.bytesRestored == 1 && summary.bytesChangedByGuest == 0)
        #expect(try byte(frame: Self.newFrame) == 0x55)
        #expect(try byte(frame: Self.oldFrame) == 0xCC)       // not ours any more: untouched
    }

    @Test func detachLeavesAloneABreakpointWhosePageWasReplaced() throws {
        try fixture.head(try fixture.folio(frame: Self.newFrame, index: 0))
        try put(0x55, frame: Self.newFrame)
        let summary = tracker.disarm(try paused())
        #expect(summary.bytesRestored == 0 && summary.bytesChangedByGuest == 1)
        #expect(summary.notes.count == 1 && summary.notes[0].contains("moved"), "\(summary.notes)")
        #expect(try byte(frame: Self.oldFrame) == 0xCC && byte(frame: Self.newFrame) == 0x55)
    }

    @Test func anEvictedPageIsForgottenAndWantedAgain() throws {
        try fixture.head(0)
        let lost = tracker.patcher.revalidate(inode: Self.inode, locator: try fixture.locator(), memory: memory)
        #expect(lost == [site])
        #expect(armedFrames().isEmpty)
        let summary = tracker.disarm(try paused())
        #expect(summary.bytesRestored == 0 && summary.bytesChangedByGuest == 0)
        #expect(try byte(frame: Self.oldFrame) == 0xCC)
    }

    @Test func anOverwrittenBreakpointIsArmedAgainOnlyOverTheSameCode() throws {
        try put(0x55, frame: Self.oldFrame)              // rewritten in place with the same code
        _ = tracker.patcher.revalidate(inode: Self.inode, locator: try fixture.locator(), memory: memory)
        #expect(try armedFrames() == [Self.oldFrame << 12] && byte(frame: Self.oldFrame) == 0xCC)
        try put(0x90, frame: Self.oldFrame)              // rewritten with other code: not armed, not written
        _ = tracker.patcher.revalidate(inode: Self.inode, locator: try fixture.locator(), memory: memory)
        #expect(try armedFrames().isEmpty && byte(frame: Self.oldFrame) == 0x90)
    }

    @Test func thePageCacheOfAMappingIsLookedUpDirectly() throws {
        let locator = try fixture.locator()
        #expect(try locator.cachedPage(inMapping: PageCacheLocatorTests.mapping, pageIndex: 0)?.rawValue == Self.oldFrame << 12)
        #expect(throws: IntrospectionError.self) { try locator.cachedPage(inMapping: 0x7fff_0000_1000, pageIndex: 0) }
        #expect(try locator.mapping(ofFile: PageCacheLocatorTests.file) == PageCacheLocatorTests.mapping)
    }
}
