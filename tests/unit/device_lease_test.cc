// The device lock directory is shared by every user of a host: files another user planted in
// it (symlinks, hard links, FIFOs), a lock they hold forever, or a directory they own must not
// let a lease write to someone else's files or hang.
#include "devices/device_lease.h"

#include "bitfusion/log.h"
#include "integration/service.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class DeviceLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("bf-lease-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
             std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    locks_ = root_ / "locks";
    ASSERT_TRUE(EnsureLockDir(locks_).ok());
    victim_ = root_ / "victim.txt";
    std::ofstream(victim_) << "the victim's data\n";
    fs::permissions(victim_, fs::perms(0600));
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string VictimText() const {
    std::ifstream in(victim_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  fs::perms VictimMode() const { return fs::status(victim_).permissions(); }

  fs::path root_, locks_, victim_;
  LeaseHolder me_ = CurrentHolder("r-test", true);
};

TEST_F(DeviceLeaseTest, LeasesAndReportsHolders) {
  auto lock = DeviceLock::TryAcquire(locks_, "gpu0", me_);
  ASSERT_TRUE(lock.ok()) << lock.error().ToString();
  const auto holders = ReadHolders(locks_, "gpu0");
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].pid, me_.pid);
  auto again = DeviceLock::TryAcquire(locks_, "gpu0", me_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), StatusCode::kResourceExhausted);
  lock->reset();
  EXPECT_TRUE(ReadHolders(locks_, "gpu0").empty());
  EXPECT_TRUE(fs::is_regular_file(locks_ / "gpu0.lock")) << "lock files are never removed";
}

TEST_F(DeviceLeaseTest, ASymlinkedLockFileIsNeitherFollowedNorChmodded) {
  fs::create_symlink(victim_, locks_ / "gpu0.lock");
  auto lock = DeviceLock::TryAcquire(locks_, "gpu0", me_);
  EXPECT_FALSE(lock.ok());
  if (!lock.ok()) {
    EXPECT_THAT(lock.error().message(), HasSubstr("cannot lock gpu0: "));
    EXPECT_THAT(lock.error().message(), HasSubstr("symlink"));
    EXPECT_THAT(lock.error().message(), HasSubstr("remove it (or choose another directory: "
                                                  "?lock_dir=DIR in the allocator URI)"));
  }
  EXPECT_EQ(VictimMode(), fs::perms(0600)) << "the link's target was made world-writable";
  EXPECT_EQ(VictimText(), "the victim's data\n");
}

TEST_F(DeviceLeaseTest, ASymlinkedHoldersFileIsNotWritten) {
  fs::create_symlink(victim_, locks_ / "gpu0.holders");
  {
    auto lock = DeviceLock::TryAcquire(locks_, "gpu0", me_);
    ASSERT_TRUE(lock.ok()) << "the lock itself is fine; only the report is lost";
  }
  EXPECT_EQ(VictimText(), "the victim's data\n");
  EXPECT_EQ(VictimMode(), fs::perms(0600));
}

// The warning about a holders file that cannot be written names the directory's own setting,
// both when the lease is taken and when it is given back.
TEST_F(DeviceLeaseTest, TheHoldersWarningNamesTheSettingOfItsKindOfDirectory) {
  static constexpr LockDirKind kKind = {"test lease directory", "?test_dir=DIR"};
  fs::create_symlink(victim_, locks_ / "host-a.holders");
  std::vector<std::string> warnings;
  SetLogHandler([&warnings](LogLevel level, std::string_view m) {
    if (level >= LogLevel::kWarning) warnings.emplace_back(m);
  });
  {
    auto lock = DeviceLock::TryAcquire(locks_, "host-a", me_, kKind);
    EXPECT_TRUE(lock.ok()) << lock.error().ToString();
  }
  SetLogHandler(nullptr);
  ASSERT_EQ(warnings.size(), 2u);
  for (const auto& w : warnings) {
    EXPECT_THAT(w, HasSubstr("cannot record the lease holder: "));
    EXPECT_THAT(w, HasSubstr("?test_dir=DIR"));
    EXPECT_THAT(w, Not(HasSubstr("lock_dir")));
  }
  EXPECT_EQ(VictimText(), "the victim's data\n");
}

TEST_F(DeviceLeaseTest, AHardLinkedHoldersFileIsNotWritten) {
  ASSERT_EQ(::link(victim_.c_str(), (locks_ / "gpu0.holders").c_str()), 0) << strerror(errno);
  {
    auto lock = DeviceLock::TryAcquire(locks_, "gpu0", me_);
    ASSERT_TRUE(lock.ok());
  }
  EXPECT_EQ(VictimText(), "the victim's data\n");
  EXPECT_EQ(VictimMode(), fs::perms(0600));
}

TEST_F(DeviceLeaseTest, AFifoInPlaceOfTheHoldersFileDoesNotHang) {
  const fs::path fifo = locks_ / "gpu0.holders";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  auto read = std::async(std::launch::async, [&] { return ReadHolders(locks_, "gpu0"); });
  const bool done = read.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  if (!done) {
    // Let the stuck reader go: a writer that opens and closes gives it end-of-file.
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (w >= 0) ::close(w);
  }
  EXPECT_TRUE(done) << "ReadHolders blocked opening a FIFO";
  EXPECT_TRUE(read.get().empty());
}

TEST_F(DeviceLeaseTest, AHoldersLockKeptByAnotherProcessDelaysButNeverBlocks) {
  // Any local user can open the holders file and flock it for ever.
  const fs::path holders = locks_ / "gpu0.holders";
  const int squatter = ::open(holders.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  ASSERT_GE(squatter, 0);
  ASSERT_EQ(::flock(squatter, LOCK_EX), 0);
  const auto start = std::chrono::steady_clock::now();
  auto acquire = std::async(std::launch::async, [&] {
    auto lock = DeviceLock::TryAcquire(locks_, "gpu0", me_);
    if (!lock.ok()) return false;
    lock->reset();  // released while the holders file is still squatted
    return true;
  });
  const bool done = acquire.wait_for(std::chrono::seconds(15)) == std::future_status::ready;
  ::close(squatter);  // lets a blocked lease go on
  EXPECT_TRUE(done) << "the lease waited for the holders file's flock without a deadline";
  EXPECT_TRUE(acquire.get()) << "the lease itself is taken; only its record is skipped";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST_F(DeviceLeaseTest, ALockDirectoryOthersMayWriteNeedsTheStickyBit) {
  fs::permissions(locks_, fs::perms(0777));
  const Status s = EnsureLockDir(locks_);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("the device lock directory " + locks_.string()));
  EXPECT_THAT(s.message(), HasSubstr("sticky"));
  auto lock = DeviceLock::TryAcquire(locks_, "gpu0", me_);
  ASSERT_FALSE(lock.ok());
  // The setting that moves the directory is named once, not again by TryAcquire.
  const std::string message = lock.error().message();
  const std::string option = "?lock_dir=DIR in the allocator URI";
  ASSERT_NE(message.find(option), std::string::npos) << message;
  EXPECT_EQ(message.find(option, message.find(option) + 1), std::string::npos) << message;
  fs::permissions(locks_, fs::perms(01777));
  EXPECT_TRUE(EnsureLockDir(locks_).ok());
  EXPECT_TRUE(DeviceLock::TryAcquire(locks_, "gpu0", me_).ok());
}

TEST_F(DeviceLeaseTest, ALockDirectoryAnotherUserOwnsIsRefused) {
  BITFUSION_REQUIRE_SERVICE(::geteuid() == 0, "needs root to give the directory to another user");
  ASSERT_EQ(::chown(locks_.c_str(), 65534, 65534), 0);
  const Status s = EnsureLockDir(locks_);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("owned by uid 65534"));
  EXPECT_THAT(s.message(), HasSubstr("lock_dir"));
  EXPECT_FALSE(DeviceLock::TryAcquire(locks_, "gpu0", me_).ok());
}

TEST_F(DeviceLeaseTest, TheDefaultIsNeverAFixedNameUnderTmp) {
  EXPECT_NE(DefaultLockDir().string().rfind("/tmp/", 0), 0u) << DefaultLockDir();
}

}  // namespace
}  // namespace bitfusion
