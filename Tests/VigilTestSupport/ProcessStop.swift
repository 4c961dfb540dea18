import Foundation

extension Process {
    /// Sends `signal` and waits at most `seconds` for the process to exit; a process still running
    /// then is killed (SIGKILL), so a test that finds a hang fails instead of hanging. Returns
    /// whether it exited on its own.
    @discardableResult
    public func stop(with signal: Int32 = SIGTERM, within seconds: TimeInterval = 30) -> Bool {
        guard isRunning else { return true }
        kill(processIdentifier, signal)
        let deadline = Date(timeIntervalSinceNow: seconds)
        while isRunning && Date() < deadline { usleep(20_000) }
        guard isRunning else { return true }
        kill(processIdentifier, SIGKILL)
        waitUntilExit()
        return false
    }
}
