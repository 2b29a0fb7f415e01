//! The generator's ground truth keeps its own vector names (so a renamed detector vector
//! cannot silently agree with itself); this test holds the two vocabularies together.

use rampart_contract::Vector;
use rampart_trafficgen::AttackVector;

#[test]
fn every_truth_vector_is_a_contract_vector_of_the_same_name() {
    for truth in AttackVector::ALL {
        let json = serde_json::to_string(&truth).unwrap();
        let vector: Vector = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("ground truth vector {json} is not in the contract: {e}"));
        assert_eq!(vector.name(), truth.name());
        assert_eq!(truth.name().parse::<Vector>(), Ok(vector));
    }
}
