package jobs

import (
	"strconv"
	"strings"
)

// TransactionID is the PXP transaction id of a node request of job jobID: the job id, "_"
// and unique (a random UUID), so that a result names its job and a store finds the record
// from the id alone, without an index of transaction ids. The result is in the alphabet PXP
// transaction ids allow ([A-Za-z0-9_.-]).
func TransactionID(jobID int64, unique string) string {
	return strconv.FormatInt(jobID, 10) + "_" + unique
}

// TransactionJob returns the job id transaction id txn names, and false for an id in another
// form (an id made before TransactionID, or by something else).
func TransactionJob(txn string) (int64, bool) {
	head, _, found := strings.Cut(txn, "_")
	if !found || head == "" || len(head) > 19 || (len(head) > 1 && head[0] == '0') {
		return 0, false
	}
	id, err := strconv.ParseInt(head, 10, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return id, true
}
