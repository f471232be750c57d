import Foundation
import Testing

@testable import GuestImage

@Suite struct GuestImageTests {
    // MARK: - CPIOArchive

    @Test func cpioRoundTripWithRealCpio() throws {
        var archive = CPIOArchive()
        archive.addDirectory("/etc")
        archive.addFile("/usr/bin/tool", contents: Array("#!/bin/sh\necho hi\n".utf8), mode: 0o755)
        archive.addSymlink("/bin/sh", target: "/bin/busybox")
        archive.addFile("etc/hostname", contents: Array("leakvisor\n".utf8), mode: 0o644)
        archive.addFile("/odd", contents: [1, 2, 3], mode: 0o600)
        archive.addDirectory("/usr/bin")  // exists already: no duplicate
        let bytes = archive.encoded()
        #expect(bytes.count % 4 == 0)

        let dir = try TemporaryDirectory()
        let file = dir.path + "/test.cpio"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let listing = try run("/bin/sh", ["-c", "cpio -it --quiet < '\(file)'"])
        #expect(listing.status == 0)
        #expect(
            listing.output.split(separator: "\n") == [
                "etc", "usr", "usr/bin", "usr/bin/tool", "bin", "bin/sh", "etc/hostname", "odd",
            ])

        let extract = dir.path + "/root"
        try FileManager.default.createDirectory(atPath: extract, withIntermediateDirectories: true)
        let unpack = try run("/bin/sh", ["-c", "cd '\(extract)' && cpio -id --quiet < '\(file)'"])
        #expect(unpack.status == 0, "\(unpack.output)")
        let tool = try FileManager.default.attributesOfItem(atPath: extract + "/usr/bin/tool")
        #expect((tool[.posixPermissions] as? Int) == 0o755)
        #expect(FileManager.default.contents(atPath: extract + "/etc/hostname") == Data("leakvisor\n".utf8))
        #expect(FileManager.default.contents(atPath: extract + "/odd") == Data([1, 2, 3]))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: extract + "/bin/sh") == "/bin/busybox")
    }

    @Test func cpioHeaderLayout() {
        var archive = CPIOArchive()
        archive.addFile("a", contents: [0x41], mode: 0o644)
        let bytes = archive.encoded()
        let header = String(decoding: bytes[0..<110], as: UTF8.self)
        #expect(header.hasPrefix("070701" + "00000001" + "000081A4"))
        // 110-byte header + "a\0" = 112, data 1 byte padded to 4.
        #expect(Array(bytes[110..<113]) == [0x61, 0, 0x41])
        let trailer = String(decoding: bytes[(116 + 110)..<(116 + 120)], as: UTF8.self)
        #expect(trailer == "TRAILER!!!")
    }

    @Test func cpioReplacesDuplicateFiles() {
        var archive = CPIOArchive()
        archive.addFile("/x", contents: [1], mode: 0o644)
        archive.addFile("x", contents: [2], mode: 0o644)
        #expect(archive.paths == ["x"])
        #expect(archive.contains("/x"))
    }

    // MARK: - GuestCommand

    @Test func scriptQuotesArguments() throws {
        let arguments = [
            "/usr/bin/printf", "[%s]\\n", "hello world", "it's \"quoted\"", "$HOME `id` \\ *", "", "a'b'c",
            "line1\nline2",
        ]
        let script = GuestCommand.script(arguments: arguments)
        #expect(script.hasPrefix("#!/bin/sh\nexec '/usr/bin/printf' "))
        let result = try runScript(script)
        #expect(result.status == 0)
        #expect(
            result.output
                == "[hello world]\n[it's \"quoted\"]\n[$HOME `id` \\ *]\n[]\n[a'b'c]\n[line1\nline2]\n")
    }

    @Test func scriptPropagatesExitStatus() throws {
        let result = try runScript(GuestCommand.script(arguments: ["sh", "-c", "exit 7"]))
        #expect(result.status == 7)
        #expect(try runScript(GuestCommand.script(arguments: [])).status == 0)
    }

    // MARK: - HostFileSpec

    @Test func specParsing() throws {
        #expect(try HostFileSpec(parsing: "/bin/ls") == HostFileSpec(host: "/bin/ls", guest: "/ls"))
        #expect(try HostFileSpec(parsing: "build/tool") == HostFileSpec(host: "build/tool", guest: "/tool"))
        #expect(try HostFileSpec(parsing: "/bin/ls:/usr/bin/ls").guest == "/usr/bin/ls")
        #expect(try HostFileSpec(parsing: "/bin/ls:") == HostFileSpec(host: "/bin/ls", guest: "/ls"))
        #expect(try HostFileSpec(parsing: "a:b:/x") == HostFileSpec(host: "a:b", guest: "/x"))
        for bad in ["", ":/x", "/bin/ls:relative", "/bin/ls:/", "/tmp/.."] {
            #expect(throws: HostFileError.self, "\(bad)") { try HostFileSpec(parsing: bad) }
        }
        let error = try #require(throws: HostFileError.self) { try HostFileSpec(parsing: "/a:b") }
        #expect(error.description.contains("not absolute"))
    }

    // MARK: - HostFileBundle

    @Test func bundlingDynamicBinaryPullsInLoaderAndLibc() throws {
        var archive = CPIOArchive()
        try addHostFiles([HostFileSpec(parsing: "/bin/ls:/usr/bin/ls")], to: &archive)
        let paths = Set(archive.paths)
        #expect(paths.contains("usr/bin/ls"))
        #expect(paths.contains { $0.hasSuffix("/ld-linux-x86-64.so.2") })
        #expect(paths.contains { $0.hasSuffix("/libc.so.6") })
        // Symbolic links are kept and their targets included as regular files.
        #expect(paths.contains("lib64/ld-linux-x86-64.so.2"))
        let loaderTarget = try FileManager.default.destinationOfSymbolicLink(
            atPath: "/lib64/ld-linux-x86-64.so.2")
        #expect(paths.contains(CPIOArchive.normalize(loaderTarget)))

        // The real cpio tool agrees and the binary stays executable.
        let dir = try TemporaryDirectory()
        let file = dir.path + "/bundle.cpio"
        try Data(archive.encoded()).write(to: URL(fileURLWithPath: file))
        let listing = try run("/bin/sh", ["-c", "cpio -itv --quiet < '\(file)'"])
        #expect(listing.status == 0)
        let lines = listing.output.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("-rwxr-xr-x") && $0.hasSuffix(" usr/bin/ls") })
    }

    @Test func bundlingStaticOrScriptAddsOnlyTheFile() throws {
        let dir = try TemporaryDirectory()
        let script = dir.path + "/hello.sh"
        try Data("#!/bin/sh\necho hi\n".utf8).write(to: URL(fileURLWithPath: script))
        var archive = CPIOArchive()
        try addHostFiles([HostFileSpec(host: script)], to: &archive)
        #expect(archive.paths == ["hello.sh"])
    }

    @Test func bundlingErrors() throws {
        var archive = CPIOArchive()
        #expect(throws: HostFileError.missingFile(path: "/nonexistent/file")) {
            try addHostFiles([HostFileSpec(host: "/nonexistent/file")], to: &archive)
        }
        #expect(throws: HostFileError.notRegularFile(path: "/tmp")) {
            try addHostFiles([HostFileSpec(host: "/tmp", guest: "/x")], to: &archive)
        }
    }

    @Test func lddOutputParsing() throws {
        let output = """
            \tlinux-vdso.so.1 (0x00007ffd)
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f00)
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f01)
            """
        #expect(
            try SharedLibraries.parse(output, binary: "x")
                == ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"])
        #expect(throws: HostFileError.missingLibrary(binary: "x", library: "libfoo.so")) {
            try SharedLibraries.parse("\tlibfoo.so => not found\n", binary: "x")
        }
    }

    @Test func elfInterpreterDetection() throws {
        let ls = try #require(FileManager.default.contents(atPath: "/bin/ls"))
        #expect(ELFInterpreter.path(in: [UInt8](ls)) == "/lib64/ld-linux-x86-64.so.2")
        #expect(ELFInterpreter.path(in: Array("#!/bin/sh\n".utf8)) == nil)
        #expect(ELFInterpreter.path(in: Array([UInt8](ls).prefix(80))) == nil)  // truncated
        if let busybox = FileManager.default.contents(atPath: "/bin/busybox") {
            #expect(ELFInterpreter.path(in: [UInt8](busybox)) == nil)  // static
        }
    }
}

// MARK: - Helpers

private struct TemporaryDirectory: ~Copyable {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "/guestimage-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

private func runScript(_ script: String) throws -> (status: Int32, output: String) {
    let dir = try TemporaryDirectory()
    let file = dir.path + "/command"
    try Data(script.utf8).write(to: URL(fileURLWithPath: file))
    return try run("/bin/sh", [file])
}
