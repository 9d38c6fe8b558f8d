"""What is sent to collectors: kflow (Cap'n Proto CHF segments) for Kentik and IPFIX records."""
