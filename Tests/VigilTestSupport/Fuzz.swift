import Foundation
import Yams

/// A small deterministic generator (SplitMix64), so a failing random case can be replayed.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random inputs for parsers.
public enum Fuzz {
    public static let scalars = ["", "0", "-1", "1", "9223372036854775807", "-9223372036854775808", "99999999999999999999", "1e400",
                          "inf", ".inf", "-.inf", "nan", ".nan", "true", "false", "null", "~", "yes", "0x10", "1.5",
                          "2026-11-27T21:17:22Z", "/", "/a/../b", "..", "@", "a@v1", "é", "\u{202e}x", "\u{0}", "\u{7f}", "\"", "'",
                          "*", "&a", "!!binary", "{", "[", "- x", ": x", "#c", String(repeating: "a", count: 400)]

    public static func bytes(_ random: inout SeededRandom, count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    /// Flips, deletes, inserts or duplicates a few bytes or lines.
    public static func mutate(_ text: String, _ random: inout SeededRandom) -> String {
        var bytes = Array(text.utf8)
        for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0...4, using: &random) {
            case 0: bytes[at] = UInt8.random(in: 0...255, using: &random)
            case 1: bytes.remove(at: at)
            case 2: bytes.insert(contentsOf: Array(scalars.randomElement(using: &random)!.utf8), at: at)
            case 3:
                let end = min(bytes.count, at + Int.random(in: 1...40, using: &random))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            default:
                let end = min(bytes.count, at + Int.random(in: 1...80, using: &random))
                bytes.removeSubrange(at..<end)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func yamlDocument(_ random: inout SeededRandom, keys: [String]) -> String {
        let node = value(&random, keys: keys, depth: 0)
        return (try? Yams.dump(object: node)) ?? ""
    }

    public static func jsonDocument(_ random: inout SeededRandom, keys: [String]) -> String {
        let node = value(&random, keys: keys, depth: 0, json: true)
        guard JSONSerialization.isValidJSONObject(node), let data = try? JSONSerialization.data(withJSONObject: node) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    private static func value(_ random: inout SeededRandom, keys: [String], depth: Int, json: Bool = false) -> Any {
        switch depth >= 3 ? Int.random(in: 0...2, using: &random) : Int.random(in: 0...4, using: &random) {
        case 0: return scalars.randomElement(using: &random)!
        case 1: return Int.random(in: Int.min...Int.max, using: &random)
        case 2: return json ? Double.random(in: -1e9...1e9, using: &random) : Bool.random(using: &random)
        case 3: return (0..<Int.random(in: 0...4, using: &random)).map { _ in value(&random, keys: keys, depth: depth + 1, json: json) }
        default:
            var map: [String: Any] = [:]
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                map[keys.randomElement(using: &random)!] = value(&random, keys: keys, depth: depth + 1, json: json)
            }
            return map
        }
    }
}
