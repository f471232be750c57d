import Control
import Foundation
import Monitor
import SnapshotFile
import VMM

/// How this run's machine starts: a cold boot (saving a snapshot for the next run when the
/// snapshot cache is on), or a snapshot's state.
enum MachineStart {
    case cold(saveSnapshotTo: String?)
    case restore(RestoredSnapshot, path: String, fromCache: Bool)
}

extension RunSession {
    enum SnapshotError: Error, CustomStringConvertible {
        case unusable(path: String, reason: String)
        case commandForRunningGuest(path: String)
        var description: String {
            switch self {
            case .unusable(let path, let reason): return "cannot restore \(path): \(reason)"
            case .commandForRunningGuest(let path):
                return "\(path) was saved while its guest was running a command, so it continues that; "
                    + "a new command can only be given to a snapshot of a guest waiting for its work (the ones `leakvisor run` makes)"
            }
        }
    }

    /// `--restore FILE`, else the cached snapshot of this image and machine shape if one fits, else a
    /// cold boot that saves one (unless `--no-snapshot` or an initramfs without `lv-payload`).
    func chooseStart(config: MachineConfiguration, identity: SnapshotIdentity, policy: any HostPolicy) throws -> MachineStart {
        if let file = options.restore {
            let path = HostPathArgument.absolute(file)
            do {
                return .restore(try SnapshotReader.read(path, expecting: identity), path: path, fromCache: false)
            } catch {
                throw SnapshotError.unusable(path: path, reason: "\(error)")
            }
        }
        // An initramfs whose init fetches a payload (the configuration found `lv-payload` in it).
        guard options.snapshots, config.trapHandlerAwaitsPayload else {
            return .cold(saveSnapshotTo: nil)
        }
        let cache = SnapshotCache(directory: SnapshotCache.defaultDirectory())
        let path = cache.path(for: config, identity: identity, policy: policy)
        if FileManager.default.fileExists(atPath: path) {
            do {
                return .restore(try SnapshotReader.read(path, expecting: identity), path: path, fromCache: true)
            } catch {
                MonitorOutput.say("snapshot: \(path) is unusable (\(error)); booting cold and replacing it")
                unlink(path)
            }
        }
        do { try cache.create() } catch {
            MonitorOutput.say("snapshot: \(error); booting cold without saving one")
            return .cold(saveSnapshotTo: nil)
        }
        return .cold(saveSnapshotTo: path)
    }

    /// Builds the machine for `start`. A cached snapshot that KVM will not take is deleted and
    /// the run boots cold instead; `--restore` fails then. Failures that are not the snapshot's
    /// (the KVM device, a disk) fail the run and leave the cache alone.
    func makeMachine(_ start: MachineStart, config: MachineConfiguration, identity: SnapshotIdentity,
                     policy: any HostPolicy) throws -> (Machine, savesSnapshot: Bool) {
        switch start {
        case .restore(let snapshot, let path, let fromCache):
            let began = ContinuousClock.now
            do {
                if !snapshot.contents.monitorStateSaysGuestAwaitsPayload, !options.command.isEmpty || !options.additions.isEmpty {
                    throw SnapshotError.commandForRunningGuest(path: path)
                }
                let machine = try Machine(restoring: snapshot, config, policy: policy)
                let elapsed = (ContinuousClock.now - began) / .milliseconds(1)
                MonitorOutput.say("snapshot: restored \(path) in \(Int(elapsed)) ms" + (fromCache ? " (--no-snapshot boots cold)" : ""))
                for refusal in machine.restore?.refusals ?? [] { MonitorOutput.say("snapshot: not restored on this host: \(refusal)") }
                return (machine, false)
            } catch let error as SnapshotError {
                throw error
            } catch let error as VMMError where !error.concernsSnapshot {
                // Not the file's fault (no /dev/kvm, a bad --disk, ...): a cold boot would fail the
                // same way, and the cached snapshot stays for the next run.
                throw error
            } catch {
                guard fromCache else { throw SnapshotError.unusable(path: path, reason: "\(error)") }
                MonitorOutput.say("snapshot: \(path) could not be restored (\(error)); booting cold and replacing it")
                unlink(path)
                return try makeMachine(.cold(saveSnapshotTo: path), config: config, identity: identity, policy: policy)
            }
        case .cold(let save?):
            // The guest asks for its payload once booted: save the snapshot there, then hand it
            // over, stamped again (the guest sets its clock from it, minutes after the first stamp).
            let payload = config.payload ?? []
            let makePayload = payloadMaker()
            let machine = try Machine.bootSavingSnapshot(config, policy: policy, to: save, identity: identity, payload: {
                (try? makePayload()) ?? payload
            }, saved: { result in
                switch result {
                case .success(let saved):
                    MonitorOutput.say("snapshot: saved \(save) (\(saved.bytesOnDisk >> 20) MiB on disk, guest paused \(String(format: "%.2f", saved.pausedSeconds)) s);"
                                      + " the next run with this image starts from it")
                    for refusal in saved.refusals { MonitorOutput.say("snapshot: not saved on this host: \(refusal)") }
                case .failure(let error):
                    MonitorOutput.say("snapshot: not saved: \(error)")
                }
            })
            return (machine, true)
        case .cold(nil):
            return (try Machine(config, policy: policy), false)
        }
    }

    /// What tracking a run continues: a snapshot saved with tracking state goes on being tracked in
    /// the mode it was saved with (`--track` may repeat it, not change it); a guest saved mid-run
    /// without tracking cannot start tracking (that is attaching).
    func trackingToContinue(_ start: MachineStart) throws -> (TrackTarget?, TrackingSnapshot?) {
        guard case .restore(let snapshot, let path, _) = start,
              let monitor = try? MachineSnapshotState.decode(snapshot.contents.monitorState) else { return (options.track, nil) }
        guard let data = monitor.tracking else {
            if options.track != nil, monitor.trapHandlerActive == true, !monitor.guestAwaitsPayload {
                throw SnapshotError.unusable(path: path, reason: "it was saved mid-run without --track; tracking cannot start in a"
                                             + " restored guest with --track: restore it without --track, then use `leakvisor attach`")
            }
            if options.track == nil, options.trackingOptionsGiven {
                throw SnapshotError.unusable(path: path, reason: "it was saved without --track: --report, --scan-every and the other"
                                             + " tracking options need --track")
            }
            return (options.track, nil)
        }
        let saved: TrackingSnapshot
        do { saved = try TrackingSnapshot.decode(data) } catch { throw SnapshotError.unusable(path: path, reason: "\(error)") }
        let mode: TrackTarget = saved.tracker.includesOperators ? .user : .userMalloc
        if let asked = options.track, asked != mode {
            throw SnapshotError.unusable(path: path, reason: "it was saved tracking with --track \(mode.rawValue), which it goes on with;"
                                         + " --track \(asked.rawValue) cannot change that")
        }
        return (mode, saved)
    }

    /// `leakvisor snapshot`: saves the running guest on request. A tracked guest's tracking state
    /// (breakpoints, calls in flight, ledger, scan history) is saved with it, taken while the guest
    /// is paused and no scan runs, so every restore goes on tracking from that point.
    static func saveOnRequest(_ machine: Machine, tracking: TrackingSession?, path: String, identity: SnapshotIdentity) -> ControlResponse {
        guard path.hasPrefix("/") else { return ControlResponse(error: "the snapshot path must be absolute") }
        if tracking?.tracker.usesExitlessPath == true {
            return ControlResponse(error: "this guest is tracked with --exitless, whose pages live outside its RAM: snapshots of it are not supported yet")
        }
        do {
            let saved = try tracking.map { session in
                try session.holdingScans {
                    try machine.saveSnapshot(to: path, identity: identity, tracking: { try session.savedState()?.encoded() })
                }
            } ?? machine.saveSnapshot(to: path, identity: identity)
            return ControlResponse(snapshot: SnapshotSaved(path: path, bytesOnDisk: saved.bytesOnDisk, ramPagesWritten: saved.pagesWritten,
                                                           pausedSeconds: saved.pausedSeconds))
        } catch {
            return ControlResponse(error: "\(error)")
        }
    }
}
