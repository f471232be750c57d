/// The guest's work as one newc cpio archive, which the image's init fetches after the boot or
/// after a snapshot restore (`lv-payload`) and unpacks at `/`: `/leakvisor/command` (the
/// command as a script), the `--add` files, `/leakvisor/time` (the host's time, so that a
/// restored guest's clock is set again), `/leakvisor/virtio` when the run has disks, and
/// `RootDisk.markerPath` (holding the device) when the command runs on a root disk.
public enum GuestPayload {
    /// Whether `initramfs` (an uncompressed newc archive) has the payload fetcher, i.e. its init
    /// waits for a payload: the default image's does.
    public static func fetcherIsPresent(in initramfs: [UInt8]) -> Bool {
        let name = Array("usr/bin/lv-payload\0".utf8)
        guard initramfs.count >= name.count else { return false }
        return initramfs.withUnsafeBufferPointer { buffer in
            let first = name[0]
            var index = 0
            while index + name.count <= buffer.count {
                if buffer[index] == first, buffer[index..<(index + name.count)].elementsEqual(name) { return true }
                index += 1
            }
            return false
        }
    }

    /// The archive for `command` (program and arguments; empty: init's own demo runs) and the
    /// host files in `additions` (`HOST[:GUEST]` specs), stamped with `unixTime`. `loadVirtio`
    /// adds `/leakvisor/virtio`: init then loads the virtio drivers (the run has disks).
    /// `rootDevice` (`--root`) adds `RootDisk.markerPath` naming it, and the virtio marker.
    public static func archive(command: [String], additions: [String], unixTime: Int, loadVirtio: Bool = false,
                               rootDevice: String? = nil) throws -> [UInt8] {
        var archive = CPIOArchive()
        if loadVirtio || rootDevice != nil { archive.addFile("/leakvisor/virtio", contents: [], mode: 0o644) }
        if let rootDevice { archive.addFile(RootDisk.markerPath, contents: Array("\(rootDevice)\n".utf8), mode: 0o644) }
        if !command.isEmpty {
            archive.addFile("/leakvisor/command", contents: Array(GuestCommand.script(arguments: command).utf8), mode: 0o755)
        }
        if !additions.isEmpty {
            try addHostFiles(additions.map(HostFileSpec.init(parsing:)), to: &archive)
        }
        archive.addFile("/leakvisor/time", contents: Array("\(unixTime)\n".utf8), mode: 0o644)
        return archive.encoded()
    }
}
