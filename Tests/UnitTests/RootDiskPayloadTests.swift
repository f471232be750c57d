@testable import AllocationTracing
import Foundation
import GuestImage
import Testing

/// `leakvisor run --root`: what the payload tells the guest's init, the order the disks are
/// attached in, and which host tree serves as the symbol directory of a root disk.
struct RootDiskPayloadTests {
    /// The (name, contents) entries of a newc archive, read as the guest's lv-payload does.
    static func entries(_ archive: [UInt8]) -> [String: [UInt8]] {
        func hex(_ at: Int) -> Int { Int(String(decoding: archive[at..<(at + 8)], as: UTF8.self), radix: 16) ?? -1 }
        var result: [String: [UInt8]] = [:]
        var at = 0
        while at + 110 <= archive.count, String(decoding: archive[at..<(at + 6)], as: UTF8.self) == "070701" {
            let size = hex(at + 54), nameSize = hex(at + 94)
            let name = String(decoding: archive[(at + 110)..<(at + 110 + nameSize - 1)], as: UTF8.self)
            if name == "TRAILER!!!" { break }
            let data = (at + 110 + nameSize + 3) & ~3
            result[name] = Array(archive[data..<(data + size)])
            at = (data + size + 3) & ~3
        }
        return result
    }

    @Test func aRootRunsPayloadNamesTheFirstVirtioDiskAndLoadsTheDrivers() throws {
        let archive = try GuestPayload.archive(command: ["cat", "/etc/debian_version"], additions: [], unixTime: 1,
                                               rootDevice: RootDisk.guestDevice)
        let files = Self.entries(archive)
        #expect(files["leakvisor/root"].map { String(decoding: $0, as: UTF8.self) } == "/dev/vda\n", "\(files.keys.sorted())")
        #expect(files["leakvisor/virtio"] != nil)
        #expect(files["leakvisor/command"].map { String(decoding: $0, as: UTF8.self) }?.contains("exec 'cat' '/etc/debian_version'") == true)
        let plain = Self.entries(try GuestPayload.archive(command: ["true"], additions: [], unixTime: 1))
        #expect(plain["leakvisor/root"] == nil && plain["leakvisor/virtio"] == nil)
        let disks = Self.entries(try GuestPayload.archive(command: ["true"], additions: [], unixTime: 1, loadVirtio: true))
        #expect(disks["leakvisor/root"] == nil && disks["leakvisor/virtio"] != nil)
    }

    @Test func theRootDiskIsAttachedBeforeTheOtherDisks() {
        #expect(RootDisk.attachmentOrder(root: "root.img", disks: ["a.img", "b.img"]) == ["root.img", "a.img", "b.img"])
        #expect(RootDisk.attachmentOrder(root: nil, disks: ["a.img"]) == ["a.img"])
        #expect(RootDisk.attachmentOrder(root: "root.img", disks: []) == ["root.img"])
    }

    @Test func theRecipesDiskBringsItsTreeAsSymbolDirectoryAndOtherDisksDoNot() throws {
        let build = FileManager.default.temporaryDirectory.appendingPathComponent("lv-rootdisk-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: build) }
        let recipe = build.appendingPathComponent("debian-root")
        try FileManager.default.createDirectory(at: recipe, withIntermediateDirectories: true)
        let image = recipe.appendingPathComponent("root.img")
        #expect(RootDisk.recipeTree(forImage: image.path, buildDirectory: build.path) == nil)   // no image yet
        try Data([0]).write(to: image)
        #expect(RootDisk.recipeTree(forImage: image.path, buildDirectory: build.path) == nil)   // no tree
        try FileManager.default.createDirectory(at: recipe.appendingPathComponent("tree"), withIntermediateDirectories: true)
        #expect(RootDisk.recipeTree(forImage: image.path, buildDirectory: build.path) == recipe.appendingPathComponent("tree").path)
        // The same image through a symlink and a relative-looking path is still the recipe's.
        let link = build.appendingPathComponent("link.img")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: image)
        #expect(RootDisk.recipeTree(forImage: link.path, buildDirectory: build.path) != nil)
        #expect(RootDisk.recipeTree(forImage: recipe.path + "/../debian-root/root.img", buildDirectory: build.path) != nil)
        // Another disk (a copy) is not: the user gives its tree with --symbols.
        let copy = build.appendingPathComponent("copy.img")
        try Data([0]).write(to: copy)
        #expect(RootDisk.recipeTree(forImage: copy.path, buildDirectory: build.path) == nil)
    }

    /// A root disk's processes map data files (ld.so.cache, locale-archive) whose host copies are
    /// not ELF: nothing to arm in them, and no note about them (there was one per file).
    @Test func aMappedDataFileIsSkippedWithoutANote() throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("lv-ld.so.cache-\(getpid())")
        try Data("glibc-ld.so.cache1.1".utf8).write(to: data)
        defer { try? FileManager.default.removeItem(at: data) }
        var catalog = SiteCatalog()
        var notes: [String] = []
        #expect(catalog.sites(inHostFile: data.path, guestPath: "/etc/ld.so.cache", includesOperators: true, note: { notes.append($0) }).isEmpty)
        #expect(notes.isEmpty, "\(notes)")
        // A host copy that cannot be read at all is still noted.
        #expect(catalog.sites(inHostFile: data.path + ".missing", guestPath: "/usr/lib/x.so", includesOperators: true, note: { notes.append($0) }).isEmpty)
        #expect(notes.count == 1, "\(notes)")
    }
}
