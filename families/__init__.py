"""The infant or toddler and their caregivers: the subject of every consent and referral."""
