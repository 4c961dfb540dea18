import Foundation
@testable import VigilRuntime
import XCTest

final class CgroupHierarchyTests: XCTestCase {
    func testFindsTheUnifiedMountInHybridLayouts() {
        let hybrid = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """
        XCTAssertEqual(CgroupHierarchy.cgroup2MountPoint(mountInfo: hybrid), "/sys/fs/cgroup/unified")
    }

    func testFindsTheMountOnAUnifiedHostWithOptionalFieldsAndEscapes() {
        let unified = """
        25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
        26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate
        """
        XCTAssertEqual(CgroupHierarchy.cgroup2MountPoint(mountInfo: unified), "/sys/fs/cgroup")
        let escaped = "26 25 0:24 / /mnt/my\\040cgroups rw - cgroup2 none rw"
        XCTAssertEqual(CgroupHierarchy.cgroup2MountPoint(mountInfo: escaped), "/mnt/my cgroups")
        XCTAssertNil(CgroupHierarchy.cgroup2MountPoint(mountInfo: "1 0 0:1 / / rw - ext4 /dev/vda rw"))
    }

    func testMapsDirectoriesToCgroupPaths() throws {
        let hierarchy = CgroupHierarchy(mountPoint: "/sys/fs/cgroup")
        XCTAssertEqual(try hierarchy.cgroupPath(ofDirectory: "/sys/fs/cgroup/kubepods/pod1/"), "/kubepods/pod1")
        XCTAssertEqual(try hierarchy.cgroupPath(ofDirectory: "/sys/fs/cgroup"), "/")
        XCTAssertThrowsError(try hierarchy.cgroupPath(ofDirectory: "/sys/fs/cgroupx/a"))
        XCTAssertEqual(hierarchy.directory(of: "/kubepods"), "/sys/fs/cgroup/kubepods")
        XCTAssertEqual(hierarchy.directory(of: "/"), "/sys/fs/cgroup")
    }

    /// id → path and path → id agree with the kernel's cgroup hierarchy on this machine: the id is
    /// the directory's inode, and a lookup by id finds the directory by walking the tree.
    func testResolvesIdsOnTheRealHierarchy() throws {
        let hierarchy = try CgroupHierarchy.system()
        let ownPath = try ownCgroupPath()
        let ownID = try hierarchy.id(of: ownPath)
        let fresh = CgroupHierarchy(mountPoint: hierarchy.mountPoint) // empty cache: forces the walk
        XCTAssertEqual(fresh.path(of: ownID), ownPath)
        XCTAssertNil(fresh.path(of: 0xdead_beef_dead))
    }

    /// This process's cgroup v2 path, from /proc/self/cgroup ("0::/path").
    private func ownCgroupPath() throws -> String {
        let text = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("0::") })
        return String(line.dropFirst(3))
    }
}
