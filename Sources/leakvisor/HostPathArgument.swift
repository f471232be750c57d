import Foundation

/// Host paths given on the command line, made absolute against the current directory.
enum HostPathArgument {
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
