// Conversions between sfpo.v1 learner messages and domain types. Parsing returns
// INVALID_ARGUMENT naming the field on malformed input.
#ifndef SFPO_SERVICES_LEARNER_LEARNER_CONVERT_H_
#define SFPO_SERVICES_LEARNER_LEARNER_CONVERT_H_

#include "absl/status/statusor.h"
#include "common/rl_types.h"
#include "common/weights_codec.h"
#include "sfpo/v1/learner.pb.h"

namespace sfpo {

void LeaseToProto(const Lease& lease, v1::Lease* out);
absl::StatusOr<Lease> LeaseFromProto(const v1::Lease& in);

void ScoredGroupToProto(const ScoredGroup& group, v1::ScoredGroup* out);
absl::StatusOr<ScoredGroup> ScoredGroupFromProto(const v1::ScoredGroup& in);

void ManifestToProto(const WeightManifest& manifest, v1::WeightManifest* out);
absl::StatusOr<WeightManifest> ManifestFromProto(const v1::WeightManifest& in);

}  // namespace sfpo

#endif  // SFPO_SERVICES_LEARNER_LEARNER_CONVERT_H_
