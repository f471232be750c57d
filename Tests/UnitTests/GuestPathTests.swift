import AllocationTracing
import Foundation
import Introspection
import LeakAnalysis
import Testing

/// Guest paths (from the guest's VMAs) confined to the host directories they are looked up in.
@Suite struct GuestPathTests {
    @Test func normalisation() {
        #expect(GuestPath.normalized("/usr/lib/libc.so.6") == "/usr/lib/libc.so.6")
        #expect(GuestPath.normalized("//usr/./lib//x/../libc.so.6") == "/usr/lib/libc.so.6")
        #expect(GuestPath.normalized("/usr/lib/../../etc/shadow") == "/etc/shadow")
        #expect(GuestPath.normalized("/usr/lib/../../../etc/shadow") == nil)
        #expect(GuestPath.normalized("/..") == nil)
        #expect(GuestPath.normalized("usr/lib/libc.so.6") == nil)
        #expect(GuestPath.normalized("") == nil)
        #expect(GuestPath.normalized("/usr/lib/libc.so.6\0/x") == nil)
        #expect(GuestPath.normalized("/") == "/")
    }

    /// A symbol root with a library, a symlink inside it, and symlinks that lead out.
    final class Root {
        let path: String
        init() throws {
            var template = Array("/tmp/lvpath-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            path = String(cString: made)
            let fm = FileManager.default
            try fm.createDirectory(atPath: path + "/root/usr/lib", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: path + "/outside", withIntermediateDirectories: true)
            #expect(fm.createFile(atPath: path + "/root/usr/lib/libok.so", contents: Data("ok".utf8)))
            #expect(fm.createFile(atPath: path + "/outside/secret", contents: Data("secret".utf8)))
            try fm.createSymbolicLink(atPath: path + "/root/usr/lib/libinner.so", withDestinationPath: "libok.so")
            try fm.createSymbolicLink(atPath: path + "/root/usr/lib/escape", withDestinationPath: path + "/outside/secret")
            try fm.createSymbolicLink(atPath: path + "/root/usr/lib/relative-escape", withDestinationPath: "../../../outside/secret")
            try fm.createSymbolicLink(atPath: path + "/root/usr/lib/shadow", withDestinationPath: "/etc/shadow")
            try fm.createSymbolicLink(atPath: path + "/root/usr/dir-escape", withDestinationPath: path + "/outside")
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    @Test func aSymbolRootKeepsItsFilesInside() throws {
        let tmp = try Root()
        let root = tmp.path + "/root"
        let files = GuestSymbolFiles(roots: [root])
        let resolved = try #require(realpath(root, nil))
        let real = String(cString: resolved)
        free(resolved)
        #expect(files.hostPath(forGuest: "/usr/lib/libok.so") == real + "/usr/lib/libok.so")
        #expect(files.hostPath(forGuest: "/usr/lib/libinner.so") == real + "/usr/lib/libok.so")
        #expect(files.hostPath(forGuest: "/usr/lib/./x/../libok.so") == real + "/usr/lib/libok.so")
        #expect(files.hostPath(forGuest: "/usr/lib/escape") == nil)
        #expect(files.hostPath(forGuest: "/usr/lib/relative-escape") == nil)
        #expect(files.hostPath(forGuest: "/usr/lib/shadow") == nil)
        #expect(files.hostPath(forGuest: "/usr/dir-escape/secret") == nil)
        #expect(files.hostPath(forGuest: "/usr/lib/../../../outside/secret") == nil)
        #expect(files.hostPath(forGuest: "usr/lib/libok.so") == nil)
        #expect(files.hostPath(forGuest: "/usr/lib/libok.so\0") == nil)
    }

    @Test func hostCopiesStayUnderTheirPrefix() throws {
        let tmp = try Root()
        let prefix = tmp.path + "/root/usr/lib/"
        let files = GuestSymbolFiles(hostCopies: [prefix])
        #expect(files.hostPath(forGuest: prefix + "libok.so") != nil)
        #expect(files.hostPath(forGuest: prefix + "escape") == nil)
        #expect(files.hostPath(forGuest: prefix + "../../outside/secret") == nil)
        #expect(files.hostPath(forGuest: prefix + "shadow") == nil)
    }

    /// The audit's case: the default host-copy prefixes opened any host file through `..`.
    @Test func theDefaultHostCopiesDoNotReachEtc() {
        let files = GuestSymbolFiles(hostCopies: ["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"])
        #expect(files.hostPath(forGuest: "/usr/lib/../../etc/shadow") == nil)
        #expect(files.hostPath(forGuest: "/lib/../etc/passwd") == nil)
        #expect(files.hostPath(forGuest: "/usr/lib/../../etc/passwd") == nil)
    }
}
