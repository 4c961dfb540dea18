import ArgumentParser
import Foundation

/// A failure the user can act on, printed as one line on stderr.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command's body; any error is printed as `vigil: <what to do>` and exits with status 2
/// (1 is left to the traced command's own failures).
func reportingFailures<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as ValidationError {
        throw error
    } catch {
        FileHandle.standardError.write(Data("vigil: \(error)\n".utf8))
        throw ExitCode(2)
    }
}
