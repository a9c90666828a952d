#include "common/closable_queue.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sfpo {
namespace {

using ::testing::ElementsAre;

// Generous bound for "a blocked call should have been woken"; never reached when correct.
constexpr absl::Duration kWakeBound = absl::Seconds(10);

TEST(ClosableQueueTest, PopsInFifoOrder) {
  ClosableQueue<int> queue;
  for (int i = 0; i < 5; ++i) SFPO_ASSERT_OK(queue.Push(i));
  EXPECT_EQ(queue.size(), 5u);
  std::vector<int> popped;
  for (int i = 0; i < 5; ++i) {
    SFPO_ASSERT_OK_AND_ASSIGN(int v, queue.Pop());
    popped.push_back(v);
  }
  EXPECT_THAT(popped, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(queue.size(), 0u);
}

TEST(ClosableQueueTest, HoldsMoveOnlyItems) {
  ClosableQueue<std::unique_ptr<std::string>> queue(2);
  SFPO_ASSERT_OK(queue.Push(std::make_unique<std::string>("a")));
  SFPO_ASSERT_OK_AND_ASSIGN(std::unique_ptr<std::string> v, queue.Pop());
  EXPECT_EQ(*v, "a");
}

TEST(ClosableQueueTest, PushBlocksWhileFullUntilAPop) {
  ClosableQueue<int> queue(/*capacity=*/2);
  SFPO_ASSERT_OK(queue.Push(1));
  SFPO_ASSERT_OK(queue.Push(2));
  absl::Notification about_to_push, pushed;
  absl::Status push_status;
  std::thread producer([&] {
    about_to_push.Notify();
    push_status = queue.Push(3);
    pushed.Notify();
  });
  about_to_push.WaitForNotification();
  // The producer cannot finish while the queue is full: it is still blocked after a while.
  EXPECT_FALSE(pushed.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
  EXPECT_EQ(queue.size(), 2u);
  SFPO_ASSERT_OK_AND_ASSIGN(int first, queue.Pop());
  EXPECT_EQ(first, 1);
  ASSERT_TRUE(pushed.WaitForNotificationWithTimeout(kWakeBound));
  producer.join();
  SFPO_EXPECT_OK(push_status);
  SFPO_ASSERT_OK_AND_ASSIGN(int second, queue.Pop());
  SFPO_ASSERT_OK_AND_ASSIGN(int third, queue.Pop());
  EXPECT_EQ(second, 2);
  EXPECT_EQ(third, 3);
}

TEST(ClosableQueueTest, UnboundedQueueNeverBlocksPush) {
  ClosableQueue<int> queue(/*capacity=*/0);
  for (int i = 0; i < 10000; ++i) SFPO_ASSERT_OK(queue.Push(i));
  EXPECT_EQ(queue.size(), 10000u);
}

TEST(ClosableQueueTest, CloseWakesABlockedPop) {
  ClosableQueue<int> queue;
  absl::Notification about_to_pop, popped;
  absl::StatusOr<int> result = 0;
  std::thread consumer([&] {
    about_to_pop.Notify();
    result = queue.Pop();
    popped.Notify();
  });
  about_to_pop.WaitForNotification();
  // Give the consumer time to block; it must not return on its own.
  EXPECT_FALSE(popped.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  queue.Close();
  ASSERT_TRUE(popped.WaitForNotificationWithTimeout(kWakeBound));
  consumer.join();
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_TRUE(queue.closed());
}

TEST(ClosableQueueTest, CloseWakesABlockedPush) {
  ClosableQueue<int> queue(/*capacity=*/1);
  SFPO_ASSERT_OK(queue.Push(1));
  absl::Notification about_to_push, pushed;
  absl::Status status;
  std::thread producer([&] {
    about_to_push.Notify();
    status = queue.Push(2);
    pushed.Notify();
  });
  about_to_push.WaitForNotification();
  EXPECT_FALSE(pushed.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  queue.Close();
  ASSERT_TRUE(pushed.WaitForNotificationWithTimeout(kWakeBound));
  producer.join();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_EQ(queue.size(), 1u);  // The rejected item was not added.
}

TEST(ClosableQueueTest, DrainsAfterCloseThenCancels) {
  ClosableQueue<int> queue;
  SFPO_ASSERT_OK(queue.Push(1));
  SFPO_ASSERT_OK(queue.Push(2));
  queue.Close();
  EXPECT_THAT(queue.Push(3), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  SFPO_ASSERT_OK_AND_ASSIGN(int a, queue.Pop());
  SFPO_ASSERT_OK_AND_ASSIGN(int b, queue.PopWithTimeout(absl::ZeroDuration()));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
  EXPECT_THAT(queue.Pop(), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_THAT(queue.PopWithTimeout(absl::Seconds(1)),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST(ClosableQueueTest, CloseIsIdempotent) {
  ClosableQueue<int> queue;
  queue.Close();
  queue.Close();
  EXPECT_TRUE(queue.closed());
  EXPECT_THAT(queue.Pop(), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
}

TEST(ClosableQueueTest, PopWithTimeoutExpiresOnAnEmptyQueue) {
  ClosableQueue<int> queue;
  EXPECT_THAT(queue.PopWithTimeout(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  EXPECT_THAT(queue.PopWithTimeout(absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, ::testing::_));
  EXPECT_FALSE(queue.closed());
}

TEST(ClosableQueueTest, PopWithTimeoutReturnsAnItemPushedWhileWaiting) {
  ClosableQueue<int> queue;
  absl::Notification about_to_pop;
  std::thread producer([&] {
    about_to_pop.WaitForNotification();
    SFPO_EXPECT_OK(queue.Push(7));
  });
  about_to_pop.Notify();
  absl::StatusOr<int> v = queue.PopWithTimeout(kWakeBound);
  producer.join();
  SFPO_ASSERT_OK(v);
  EXPECT_EQ(*v, 7);
}

TEST(ClosableQueueTest, ManyProducersAndConsumersDeliverEveryItemOnce) {
  constexpr int kProducers = 4;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 2000;
  ClosableQueue<int> queue(/*capacity=*/8);
  absl::Mutex mu;
  std::vector<int> received;
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      std::vector<int> mine;
      while (true) {
        absl::StatusOr<int> v = queue.Pop();
        if (!v.ok()) break;
        mine.push_back(*v);
      }
      absl::MutexLock lock(&mu);
      received.insert(received.end(), mine.begin(), mine.end());
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) SFPO_EXPECT_OK(queue.Push(p * kPerProducer + i));
    });
  }
  for (auto& t : producers) t.join();
  queue.Close();  // Consumers drain what is left, then see CANCELLED.
  for (auto& t : consumers) t.join();
  std::sort(received.begin(), received.end());
  std::vector<int> expected(kProducers * kPerProducer);
  for (int i = 0; i < static_cast<int>(expected.size()); ++i) expected[i] = i;
  EXPECT_EQ(received, expected);
}

}  // namespace
}  // namespace sfpo
