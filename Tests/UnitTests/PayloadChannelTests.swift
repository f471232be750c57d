import Devices
import Foundation
import GuestImage
import GuestMemory
import Synchronization
import Testing
import VMM
import X86

/// The payload registers of the control page: how the guest fetches its command after a boot or
/// a restore, with every value it writes treated as hostile.
struct PayloadChannelTests {
    final class Calls: Sendable {
        let waiting = Atomic<Int>(0)
        let taken = Atomic<Int>(0)
    }

    @Test func theGuestWaitsThenFetchesChunkByChunk() {
        let calls = Calls()
        let channel = PayloadChannel(onWaiting: { calls.waiting.add(1, ordering: .relaxed) },
                                     onTaken: { calls.taken.add(1, ordering: .relaxed) })
        // Polling before the offer: magic, not ready, and the monitor is told once.
        #expect(channel.read(offset: PayloadChannel.stateOffset) == PayloadChannel.magic)
        #expect(channel.read(offset: PayloadChannel.stateOffset) == PayloadChannel.magic)
        #expect(calls.waiting.load(ordering: .relaxed) == 1)
        #expect(channel.guestIsWaiting)
        let payload = (0..<2500).map { UInt8(truncatingIfNeeded: $0 * 7) }
        channel.offer(payload)
        #expect(!channel.guestIsWaiting)
        #expect(channel.read(offset: PayloadChannel.stateOffset) == PayloadChannel.magic | 1)
        #expect(channel.read(offset: PayloadChannel.lengthOffset) == 2500)

        var received: [UInt8] = []
        var destinations: [UInt64] = []
        #expect(channel.write(offset: PayloadChannel.destinationOffset, value: 0x7000))
        while received.count < payload.count {
            channel.copyNextChunk(length: 1000) { destination, bytes in
                destinations.append(destination)
                received += bytes
                return true
            }
            let result = Int64(bitPattern: channel.read(offset: PayloadChannel.resultOffset) ?? 0)
            #expect(result == Int64(min(1000, payload.count - (received.count - Int(result)))))
        }
        #expect(received == payload)
        #expect(destinations == [0x7000, 0x7000, 0x7000])
        // Nothing left: a further copy says so and writes nothing.
        channel.copyNextChunk(length: 1000) { _, _ in Issue.record("copied past the end"); return true }
        #expect(channel.read(offset: PayloadChannel.resultOffset) == UInt64(bitPattern: PayloadChannel.CopyFailure.nothingLeft.rawValue))
        #expect(!channel.taken)
        _ = channel.write(offset: PayloadChannel.takenOffset, value: 1)
        _ = channel.write(offset: PayloadChannel.takenOffset, value: 1)
        #expect(channel.taken)
        #expect(calls.taken.load(ordering: .relaxed) == 1)
    }

    @Test func hostileRequestsAreResultCodes() {
        let channel = PayloadChannel()
        // A copy or a "taken" before any offer.
        channel.copyNextChunk(length: 10) { _, _ in Issue.record("copied without a payload"); return true }
        #expect(channel.read(offset: PayloadChannel.resultOffset) == UInt64(bitPattern: PayloadChannel.CopyFailure.noPayload.rawValue))
        _ = channel.write(offset: PayloadChannel.takenOffset, value: 1)
        #expect(!channel.taken)
        channel.offer([1, 2, 3])
        // A zero length, a buffer the monitor cannot write, a length far too large.
        channel.copyNextChunk(length: 0) { _, _ in Issue.record("copied nothing"); return true }
        #expect(channel.read(offset: PayloadChannel.resultOffset) == UInt64(bitPattern: PayloadChannel.CopyFailure.badBuffer.rawValue))
        channel.copyNextChunk(length: 3) { _, _ in false }
        #expect(channel.read(offset: PayloadChannel.resultOffset) == UInt64(bitPattern: PayloadChannel.CopyFailure.badBuffer.rawValue))
        var got: [UInt8] = []
        channel.copyNextChunk(length: .max) { _, bytes in got += bytes; return true }
        #expect(got == [1, 2, 3])
        // Offsets that are not the channel's.
        #expect(channel.read(offset: 0x40) == nil)
        #expect(!channel.write(offset: 0x40, value: 1))
    }

    @Test func theControlPageForwardsSixtyFourBitRegisters() {
        let channel = PayloadChannel()
        channel.offer(Array(repeating: 0, count: 0x1_0000_0001 & 0xFFFF))
        let page = ControlPage(onExit: { _ in }, onUserSpace: {}, payload: channel)
        var bytes = [UInt8](repeating: 0xAA, count: 8)
        bytes.withUnsafeMutableBytes { page.read(offset: PayloadChannel.stateOffset, into: $0) }
        #expect(bytes == [1, 0, 0, 0, 0x4C, 0x50, 0x56, 0x4C])
        [UInt8]([0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]).withUnsafeBytes {
            page.write(offset: PayloadChannel.destinationOffset, from: $0)
        }
        var destination: UInt64 = 0
        channel.copyNextChunk(length: 1) { at, _ in destination = at; return true }
        #expect(destination == 0x1122_3344_5566_7788)
    }

    @Test func thePayloadArchiveHoldsTheCommandTheFilesAndTheTime() throws {
        let archive = try GuestPayload.archive(command: ["echo", "it's"], additions: [], unixTime: 1_700_000_000, loadVirtio: true)
        let text = String(decoding: archive, as: UTF8.self)
        #expect(text.contains("leakvisor/command"))
        #expect(text.contains("exec 'echo' 'it'\\''s'"))
        #expect(text.contains("leakvisor/time"))
        #expect(text.contains("1700000000\n"))
        #expect(text.contains("leakvisor/virtio"))
        let bare = String(decoding: try GuestPayload.archive(command: [], additions: [], unixTime: 0), as: UTF8.self)
        #expect(!bare.contains("leakvisor/command") && !bare.contains("leakvisor/virtio"))
        var image = CPIOArchive()
        image.addFile("/usr/bin/lv-payload", contents: [0x7F], mode: 0o755)
        #expect(GuestPayload.fetcherIsPresent(in: image.encoded()))
        #expect(!GuestPayload.fetcherIsPresent(in: archive))
        #expect(!GuestPayload.fetcherIsPresent(in: []))
    }

    @Test func snapshotCacheFilesAreKeyedByEverythingThatShapesTheGuest() {
        let cache = SnapshotCache(directory: "/cache")
        var config = MachineConfiguration(kernel: [1, 2, 3], kernelName: "k")
        config.initrd = [4, 5]
        let policy = HardwareHostPolicy()
        let identity = SnapshotCache.identity(of: config)
        let base = cache.path(for: config, identity: identity, policy: policy)
        #expect(base.hasPrefix("/cache/") && base.hasSuffix(".lvsnap"))
        #expect(cache.path(for: config, identity: identity, policy: policy) == base)
        var other = config
        other.vcpuCount = 2
        #expect(cache.path(for: other, identity: identity, policy: policy) != base)
        other = config
        other.memorySize = 1 << 30
        #expect(cache.path(for: other, identity: identity, policy: policy) != base)
        other = config
        other.extraCommandLine = "quiet"
        #expect(cache.path(for: other, identity: identity, policy: policy) != base)
        other = config
        other.initrd = [4, 6]
        #expect(cache.path(for: other, identity: SnapshotCache.identity(of: other), policy: policy) != base)
        // Up to four disks fit the snapshot of a run without disks (empty virtio slots).
        other = config
        other.disks = [DiskConfiguration(path: "/a", readOnly: true)]
        #expect(cache.path(for: other, identity: identity, policy: policy) == base)
        #expect(cache.path(for: config, identity: identity, policy: PVMHostPolicy()) != base)
        #expect(SnapshotCache.defaultDirectory(environment: ["LEAKVISOR_SNAPSHOT_DIR": "/x"]) == "/x")
        #expect(SnapshotCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/c", "HOME": "/h"]) == "/c/leakvisor/snapshots")
        #expect(SnapshotCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "relative", "HOME": "/h"]) == "/h/.cache/leakvisor/snapshots")
    }
}
