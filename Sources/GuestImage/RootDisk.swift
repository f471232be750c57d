import Foundation

/// `leakvisor run --root DISK`: the command runs on an ext4 disk image instead of the initramfs.
/// The disk is attached as the first virtio disk, and the payload's `markerPath` file names its
/// guest device; the image's init then mounts it, puts `/leakvisor` and the `--add` files on it,
/// moves it to `/` and chroots into it (`lv-payload --run-in-root`).
public enum RootDisk {
    /// The guest device of the root disk: the first virtio disk.
    public static let guestDevice = "/dev/vda"
    /// The payload file that asks init for a root disk; it holds `guestDevice`.
    public static let markerPath = "/leakvisor/root"
    /// The recipe's root disk and its tree (`guest-images/debian-root/build.sh`), relative to the
    /// guest-image build directory (the parent of `default/`).
    public static let recipeImage = "debian-root/root.img"
    public static let recipeTree = "debian-root/tree"

    /// A run's disks in attachment order: the root disk first (so that it is `guestDevice`),
    /// then the `--disk`s.
    public static func attachmentOrder<Disk>(root: Disk?, disks: [Disk]) -> [Disk] {
        (root.map { [$0] } ?? []) + disks
    }

    /// The host tree the recipe made `image` from, as a symbol directory laid out like the disk's
    /// root, when `image` is the recipe's image under `buildDirectory` (symlinks resolved) and
    /// the tree is there; nil for any other disk (give its tree with `--symbols`).
    public static func recipeTree(forImage image: String, buildDirectory: String) -> String? {
        let build = URL(fileURLWithPath: buildDirectory)
        let recipe = build.appendingPathComponent(recipeImage).resolvingSymlinksInPath().path
        guard FileManager.default.fileExists(atPath: recipe),
              URL(fileURLWithPath: image).resolvingSymlinksInPath().path == recipe else { return nil }
        let tree = build.appendingPathComponent(recipeTree).path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: tree, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        return tree
    }
}
