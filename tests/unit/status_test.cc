#include "bitfusion/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace bitfusion {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd number " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  BITFUSION_ASSIGN_OR_RETURN(int half, Half(x));
  BITFUSION_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int x) {
  BITFUSION_RETURN_IF_ERROR(Half(x));
  return Status::OK();
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status().ok());
  EXPECT_EQ(Status().ToString(), "ok");
  Status s = NotFoundError("no such image busybox");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "not_found: no such image busybox");
  EXPECT_EQ(s.WithContext("docker").message(), "docker: no such image busybox");
  EXPECT_TRUE(Status().WithContext("x").ok());
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "odd number 3");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), StatusCode::kInvalidArgument);
}

TEST(StatusTest, ValueOnErrorThrowsStatusError) {
  auto r = Half(3);
  try {
    (void)r.value();
    FAIL() << "value() on an error must throw";
  } catch (const StatusError& e) {
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(StatusTest, ErrnoMapsToCodes) {
  EXPECT_EQ(ErrnoError(ENOENT, "open x").code(), StatusCode::kNotFound);
  EXPECT_EQ(ErrnoError(EACCES, "open x").code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoError(ECONNREFUSED, "connect").code(), StatusCode::kUnavailable);
  EXPECT_NE(ErrnoError(ENOENT, "open /x").message().find("open /x: "), std::string::npos);
}

TEST(StatusTest, MessagesAreRedacted) {
  Status s = UnavailableError("cannot reach es://admin:hunter2@db:9200/idx");
  EXPECT_EQ(s.message().find("hunter2"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace bitfusion
